package cn.workerfile.example;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumReader;
import org.apache.avro.specific.SpecificRecordBase;

/**
 * Decodes the values of one topic into the generated class of its record, in either
 * framing the pipeline writes:
 *
 * <ul>
 *   <li>single-object encoding ({@code C3 01}, the writer schema's 8-byte CRC-64-AVRO
 *       fingerprint little-endian, the Avro body): the generated class's
 *       BinaryMessageDecoder, to which every released writer schema of the record was
 *       added, so a value of an older release is resolved to the generated class;
 *   <li>Confluent framing (byte 0, the 4-byte big-endian schema id, the Avro body): the
 *       writer schema fetched by id from the registry's Confluent-compatible API (once
 *       per id), and a SpecificDatumReader that resolves it to the generated class.
 * </ul>
 *
 * <p>Anything else, or a record of another schema, is {@link Unreadable}, with a reason
 * that names no number.
 */
final class Wire<T extends SpecificRecordBase> {
  /** A value that is not a message of the topic. */
  static final class Unreadable extends Exception {
    Unreadable(String reason) {
      super(reason, null, false, false);
    }
  }

  private static final int HEADER = 10; // C3 01 + 8-byte fingerprint
  private static final int CONFLUENT_HEADER = 5; // 00 + 4-byte schema id

  private final Class<T> type;
  private final Schema reader;
  private final String fullName;
  private final BinaryMessageDecoder<T> singleObject;
  private final Set<Long> known = new HashSet<>();
  private final Released released;
  private final Registry registry;
  private final Map<Integer, SpecificDatumReader<T>> byId = new HashMap<>();

  Wire(Class<T> type, Schema reader, BinaryMessageDecoder<T> decoder, Released released, Registry registry)
      throws IOException {
    this.type = type;
    this.reader = reader;
    this.fullName = reader.getFullName();
    this.singleObject = decoder;
    this.released = released;
    this.registry = registry;
    known.add(SchemaNormalization.parsingFingerprint64(reader));
    for (Released.Writer writer : released.writersOf(fullName)) {
      if (known.add(writer.fingerprint())) {
        decoder.addSchema(released.schema(writer));
      }
    }
  }

  /** How many writer schemas the single-object decoder knows (the current one and older releases). */
  int writerSchemas() {
    return known.size();
  }

  T decode(byte[] value) throws Unreadable {
    if (value == null) {
      throw new Unreadable("a tombstone (no value)");
    }
    if (value.length == 0) {
      throw new Unreadable("empty value: no bytes");
    }
    if ((value[0] & 0xFF) == 0xC3) {
      return decodeSingleObject(value);
    }
    if (value[0] == 0) {
      return decodeConfluent(value);
    }
    throw new Unreadable(String.format(
        "neither an Avro single-object encoded value (C3 01) nor a Confluent-framed one (00): starts with %s%s",
        hexStart(value), value[0] == '{' || value[0] == '[' ? " (looks like JSON)" : ""));
  }

  private T decodeSingleObject(byte[] value) throws Unreadable {
    if (value.length < 2 || value[1] != 0x01) {
      throw new Unreadable("not an Avro single-object encoded value: starts with " + hexStart(value)
          + ", expected the marker C3 01");
    }
    if (value.length < HEADER) {
      throw new Unreadable("truncated header: " + value.length + " bytes, a single-object encoded value has at "
          + "least " + HEADER + " (marker C3 01 and an 8-byte schema fingerprint)");
    }
    long fingerprint = ByteBuffer.wrap(value, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    if (!known.contains(fingerprint)) {
      Released.Writer other = released.byFingerprint(fingerprint);
      if (other != null) {
        throw new Unreadable("a " + simple(other.fullName()) + " instead of a " + simple(fullName));
      }
      throw new Unreadable(String.format("unknown writer schema fingerprint %016x (CRC-64-AVRO %d): not a "
          + "released workerfile schema", Long.reverseBytes(fingerprint), fingerprint));
    }
    ByteArrayInputStream in = new ByteArrayInputStream(value);
    T record;
    try {
      record = singleObject.decode(in, null);
    } catch (IOException | RuntimeException err) {
      throw new Unreadable("corrupt or truncated Avro body of " + simple(fullName) + " ("
          + (value.length - HEADER) + " bytes): " + err.getClass().getSimpleName());
    }
    if (in.available() > 0) {
      throw new Unreadable(in.available() + " bytes left after the " + simple(fullName) + " record");
    }
    return record;
  }

  private T decodeConfluent(byte[] value) throws Unreadable {
    if (value.length < CONFLUENT_HEADER) {
      throw new Unreadable("truncated Confluent header: " + value.length + " bytes, at least "
          + CONFLUENT_HEADER + " (magic byte 0 and a 4-byte schema id)");
    }
    int id = ByteBuffer.wrap(value, 1, 4).order(ByteOrder.BIG_ENDIAN).getInt();
    SpecificDatumReader<T> datumReader = byId.get(id);
    if (datumReader == null) {
      if (registry == null) {
        throw new Unreadable("a Confluent-framed value (schema id " + id + ") but no registry is configured "
            + "(--registry URL)");
      }
      Schema writer;
      try {
        writer = registry.schemaById(id);
      } catch (IOException err) {
        // not cached: a registry that is down is tried again at the next value of this id
        throw new Unreadable("the writer schema of id " + id + " could not be fetched from the registry: " + err);
      }
      if (!fullName.equals(writer.getFullName())) {
        throw new Unreadable("a " + simple(writer.getFullName()) + " (schema id " + id + ") instead of a "
            + simple(fullName));
      }
      datumReader = new SpecificDatumReader<>(writer, reader, SpecificData.getForClass(type));
      byId.put(id, datumReader);
    }
    BinaryDecoder body = DecoderFactory.get().binaryDecoder(value, CONFLUENT_HEADER,
        value.length - CONFLUENT_HEADER, null);
    T record;
    boolean end;
    try {
      record = datumReader.read(null, body);
      end = body.isEnd();
    } catch (IOException | RuntimeException err) {
      throw new Unreadable("corrupt or truncated Avro body of " + simple(fullName) + " (schema id " + id + ", "
          + (value.length - CONFLUENT_HEADER) + " bytes): " + err.getClass().getSimpleName());
    }
    if (!end) {
      throw new Unreadable("bytes left after the " + simple(fullName) + " record (schema id " + id + ")");
    }
    return record;
  }

  private static String simple(String fullName) {
    return fullName.substring(fullName.lastIndexOf('.') + 1);
  }

  private static String hexStart(byte[] value) {
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < Math.min(2, value.length); i++) {
      out.append(i > 0 ? " " : "").append(String.format("%02X", value[i] & 0xFF));
    }
    return out.toString();
  }
}
