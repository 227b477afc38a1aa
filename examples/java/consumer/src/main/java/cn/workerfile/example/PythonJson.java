package cn.workerfile.example;

import java.nio.ByteBuffer;
import java.time.LocalDate;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.IndexedRecord;

/**
 * A decoded record as the line `workerfile subscribe --json` prints for it: Python's
 * {@code json.dumps(message, ensure_ascii=False)} of the record's JSON form, which
 * {@code streams.codec.decode} gives (fields in schema order, dates as YYYY-MM-DD, enums
 * as their symbols, a WorkerFile's {@code version} left out when it has none).
 *
 * <p>Python's defaults: separators {@code ", "} and {@code ": "}, non-ASCII characters as
 * they are, and only {@code "}, {@code \}, and the control characters U+0000-U+001F escaped
 * ({@code \b \f \n \r \t} by name, the others as backslash-u and four lower-case hex digits).
 */
final class PythonJson {
  private PythonJson() {}

  static String dumps(IndexedRecord record) {
    StringBuilder out = new StringBuilder(1024);
    write(out, record, true);
    return out.toString();
  }

  private static void write(StringBuilder out, Object value, boolean top) {
    if (value == null) {
      out.append("null");
    } else if (value instanceof CharSequence text) {
      string(out, text.toString());
    } else if (value instanceof Boolean b) {
      out.append(b ? "true" : "false");
    } else if (value instanceof Integer || value instanceof Long) {
      out.append(value);
    } else if (value instanceof LocalDate date) {
      string(out, date.toString()); // ISO-8601 YYYY-MM-DD for years 0000-9999, as Python's isoformat()
    } else if (value instanceof Enum<?> symbol) {
      string(out, symbol.name());
    } else if (value instanceof GenericEnumSymbol<?> symbol) {
      string(out, symbol.toString());
    } else if (value instanceof IndexedRecord record) {
      record(out, record, top);
    } else if (value instanceof List<?> items) {
      out.append('[');
      for (int i = 0; i < items.size(); i++) {
        if (i > 0) {
          out.append(", ");
        }
        write(out, items.get(i), false);
      }
      out.append(']');
    } else if (value instanceof Map<?, ?> entries) {
      out.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> entry : entries.entrySet()) {
        if (!first) {
          out.append(", ");
        }
        first = false;
        string(out, entry.getKey().toString());
        out.append(": ");
        write(out, entry.getValue(), false);
      }
      out.append('}');
    } else if (value instanceof ByteBuffer || value instanceof Float || value instanceof Double) {
      // none in the records of these topics; Python would print them otherwise (or refuse bytes)
      throw new IllegalArgumentException("no JSON form like Python's for a " + value.getClass().getSimpleName());
    } else {
      throw new IllegalArgumentException("unexpected value of type " + value.getClass().getName());
    }
  }

  private static void record(StringBuilder out, IndexedRecord record, boolean top) {
    Schema schema = record.getSchema();
    boolean workerFile = top && "cn.workerfile.WorkerFile".equals(schema.getFullName());
    out.append('{');
    boolean first = true;
    for (Schema.Field field : schema.getFields()) {
      Object value = record.get(field.pos());
      if (workerFile && value == null && "version".equals(field.name())) {
        continue; // as streams.codec.decode: only a published file has a version
      }
      if (!first) {
        out.append(", ");
      }
      first = false;
      string(out, field.name());
      out.append(": ");
      write(out, value, false);
    }
    out.append('}');
  }

  private static final char[] HEX = "0123456789abcdef".toCharArray();

  static void string(StringBuilder out, String text) {
    out.append('"');
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        case '\b' -> out.append("\\b");
        case '\f' -> out.append("\\f");
        default -> {
          if (c < 0x20) {
            out.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xF]);
          } else {
            out.append(c);
          }
        }
      }
    }
    out.append('"');
  }
}
