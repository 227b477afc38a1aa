package cn.workerfile.example;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystem;
import java.nio.file.FileSystemAlreadyExistsException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaParser;

/**
 * Every released writer schema (schemas/released/, packed into the jar under released/),
 * found through released/fingerprints.json: each fingerprint on the wire (hex of the 8
 * bytes after C3 01) with its record's full name, its signed CRC-64-AVRO and, per
 * release, its file. Releases 1 and 2 have one self-contained file per record; later
 * ones one file per named type (a schema set), parsed together with Avro's SchemaParser,
 * which resolves the names across the files of the set.
 */
final class Released {
  /** One released writer schema of a record. */
  record Writer(String fullName, long fingerprint, String release, String file) {}

  private final Path root;
  private final List<Writer> writers = new ArrayList<>();
  private final Map<Long, Writer> byFingerprint = new HashMap<>();
  private final Map<String, Map<String, SchemaParser.ParseResult>> sets = new HashMap<>();
  private final Map<String, SchemaParser> setParsers = new HashMap<>();

  private Released(Path root) throws IOException {
    this.root = root;
    JsonNode index = new ObjectMapper().readTree(Files.readString(root.resolve("fingerprints.json")));
    for (Iterator<Map.Entry<String, JsonNode>> it = index.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> entry = it.next();
      JsonNode info = entry.getValue();
      String name = info.get("name").asText();
      long fingerprint = info.get("parsing_fingerprint64").asLong();
      // any release of a fingerprint gives the same schema: take the first (oldest)
      Map.Entry<String, JsonNode> first = info.get("releases").fields().next();
      Writer writer = new Writer(name, fingerprint, first.getKey(), first.getValue().asText());
      writers.add(writer);
      byFingerprint.put(fingerprint, writer);
    }
  }

  /** The released schemas packed with this program. */
  static Released load() {
    URL url = Released.class.getResource("/released/fingerprints.json");
    if (url == null) {
      throw new IllegalStateException("released/fingerprints.json is not on the class path (build with Maven)");
    }
    try {
      URI uri = url.toURI();
      if ("jar".equals(uri.getScheme())) {
        FileSystem jar;
        try {
          jar = FileSystems.newFileSystem(uri, Map.of());
        } catch (FileSystemAlreadyExistsException already) {
          jar = FileSystems.getFileSystem(uri);
        }
        return new Released(jar.getPath("/released"));
      }
      return new Released(Path.of(uri).getParent());
    } catch (IOException err) {
      throw new UncheckedIOException(err);
    } catch (URISyntaxException err) {
      throw new IllegalStateException(err);
    }
  }

  /** Every released writer schema of the record with this full name. */
  List<Writer> writersOf(String fullName) {
    return writers.stream().filter(w -> w.fullName().equals(fullName)).toList();
  }

  /** The released writer schema with this fingerprint, or null. */
  Writer byFingerprint(long fingerprint) {
    return byFingerprint.get(fingerprint);
  }

  /** The parsed schema of a released writer. */
  synchronized Schema schema(Writer writer) throws IOException {
    Path file = root.resolve(writer.file());
    if (!file.getFileName().toString().startsWith("cn.workerfile.")) { // releases 1 and 2: self-contained
      return new Schema.Parser().parse(Files.readString(file, StandardCharsets.UTF_8));
    }
    String release = writer.release();
    Map<String, SchemaParser.ParseResult> set = sets.get(release);
    if (set == null) {
      SchemaParser parser = new SchemaParser();
      set = new HashMap<>();
      try (Stream<Path> files = Files.list(file.getParent())) {
        for (Path each : files.filter(p -> p.getFileName().toString().endsWith(".avsc")).sorted().toList()) {
          set.put(each.getFileName().toString(), parser.parse(Files.readString(each, StandardCharsets.UTF_8)));
        }
      }
      sets.put(release, set);
      setParsers.put(release, parser);
    }
    return setParsers.get(release).resolve(set.get(file.getFileName().toString()));
  }
}
