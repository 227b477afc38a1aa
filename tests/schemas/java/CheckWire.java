// What a Java consumer does with a workerfile value, with the classes avro-maven-plugin
// generated from schemas/ (schemas/java/pom.xml): run by tests/schemas/test_java_codegen.py
// with the source launcher (java -cp CLASSES CheckWire.java DIR).
//
// DIR holds values written by the Python codec (or by fastavro with an older release's
// schema): <n>.<Record>.bin, and for an older release <n>.<Record>.writer.avsc, its
// self-contained writer schema. Each value is decoded with <Record>.getDecoder() (the
// writer schema added first, when there is one, so that it resolves to the generated
// class), and written again with toByteBuffer() to <n>.<Record>.out, for the test to
// decode with the Python codec. fingerprints.txt: each generated record's
// SchemaNormalization.parsingFingerprint64 (what follows C3 01, as a signed long).

import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.message.BinaryMessageDecoder;

public class CheckWire {
  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    List<String> names = new ArrayList<>();
    try (DirectoryStream<Path> values = Files.newDirectoryStream(dir, "*.bin")) {
      for (Path value : values) {
        names.add(value.getFileName().toString().replaceAll("\\.bin$", ""));
      }
    }
    StringBuilder fingerprints = new StringBuilder();
    for (String name : names) {
      String record = name.substring(name.indexOf('.') + 1);
      Class<?> type = Class.forName("cn.workerfile." + record);
      @SuppressWarnings("unchecked")
      BinaryMessageDecoder<Object> decoder = (BinaryMessageDecoder<Object>) type.getMethod("getDecoder").invoke(null);
      Path writer = dir.resolve(name + ".writer.avsc");
      if (Files.exists(writer)) {
        decoder.addSchema(new Schema.Parser().parse(writer.toFile()));
      }
      Object decoded = decoder.decode(Files.readAllBytes(dir.resolve(name + ".bin")));
      ByteBuffer again = (ByteBuffer) type.getMethod("toByteBuffer").invoke(decoded);
      byte[] out = new byte[again.remaining()];
      again.get(out);
      Files.write(dir.resolve(name + ".out"), out);
      Schema schema = (Schema) type.getMethod("getClassSchema").invoke(null);
      fingerprints.append(record).append(' ').append(SchemaNormalization.parsingFingerprint64(schema)).append('\n');
    }
    Files.writeString(dir.resolve("fingerprints.txt"), fingerprints.toString());
  }
}
