package cn.workerfile.example;

import cn.workerfile.ServiceEvent;
import cn.workerfile.WorkerFile;
import cn.workerfile.WorkerFileChange;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.function.Function;
import org.apache.avro.Schema;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.specific.SpecificRecordBase;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * The Java consumer example: follows worker-services, worker-file-changes or worker-files
 * as a consumer group and prints each message as `workerfile subscribe` does — the human
 * line (the number masked) or, with --json, the whole message as its JSON line — decoded
 * with the classes generated from schemas/ (see ../README.md).
 *
 * <p>Delivery as the Python subscriber's: offsets are committed only after the records
 * of a poll were printed (at-least-once); a record that is not a message of the topic is
 * reported on stderr with its topic, partition and offset and counted, never printed; a
 * message whose id was printed before in this run is not printed again.
 */
public final class WorkerfileConsumer {
  private static final String NAME = "workerfile-java-consumer";
  private static final String USAGE = String.join("\n",
      "usage: java -jar " + NAME + ".jar services|changes|files [--broker HOST:PORT] [--group G] [--once]",
      "           [--json] [--registry URL] [--kafka-config FILE]",
      "       java -jar " + NAME + ".jar decode services|changes|files [--json] [--registry URL] < VALUES",
      "",
      "  services   worker-services: subsidy grants and notices, as `workerfile subscribe services`",
      "  changes    worker-file-changes, as `workerfile subscribe changes`",
      "  files      worker-files: each file as its JSON line (--json only: a file has no one-line form)",
      "  --broker   bootstrap servers (env WORKERFILE_BROKER, default 127.0.0.1:9092)",
      "  --group    consumer group (default " + NAME + ")",
      "  --once     stop at the end offsets the partitions had when they were assigned",
      "  --json     the whole message as the JSON line `workerfile subscribe --json` prints (full SSN)",
      "  --registry the Confluent-compatible API of the schema registry, for Confluent-framed values",
      "             (env WORKERFILE_SCHEMA_REGISTRY_URL; Apicurio: http://HOST:PORT/apis/ccompat/v7)",
      "  --kafka-config  a Kafka client properties file (e.g. SASL login), applied over the defaults",
      "  decode     read values from standard input instead, one per line in base64 (an empty line is",
      "             a tombstone), and print them as above");

  /** One topic: its record, its generated decoder, its line and its deduplication id. */
  record Kind<T extends SpecificRecordBase>(String topic, Class<T> type, Schema schema,
      BinaryMessageDecoder<T> decoder, Function<T, String> line, Function<T, String> id) {}

  static Kind<?> kind(String what) {
    return switch (what) {
      case "services" -> new Kind<>("worker-services", ServiceEvent.class, ServiceEvent.getClassSchema(),
          ServiceEvent.createDecoder(null), Lines::describe, Lines::messageId);
      case "changes" -> new Kind<>("worker-file-changes", WorkerFileChange.class,
          WorkerFileChange.getClassSchema(), WorkerFileChange.createDecoder(null), Lines::describe,
          Lines::messageId);
      case "files" -> new Kind<>("worker-files", WorkerFile.class, WorkerFile.getClassSchema(),
          WorkerFile.createDecoder(null), null, null);
      default -> null;
    };
  }

  /** Prints the messages of one topic and counts what it read. */
  static final class Printer<T extends SpecificRecordBase> {
    final Kind<T> kind;
    final Wire<T> wire;
    final boolean json;
    final PrintStream out;
    final Set<String> seen = new HashSet<>();
    long printed;
    long repeated;
    long unreadable;
    long tombstones;

    Printer(Kind<T> kind, boolean json, Registry registry, PrintStream out) throws IOException {
      this.kind = kind;
      this.wire = new Wire<>(kind.type(), kind.schema(), kind.decoder(), Released.load(), registry);
      this.json = json;
      this.out = out;
    }

    void handle(byte[] key, byte[] value, String where) {
      if (value == null && kind.id() == null) { // worker-files: an erased or merged file
        tombstones++;
        say("tombstone at " + where + " (the file of " + Lines.maskSsn(key == null ? null
            : new String(key, StandardCharsets.UTF_8)) + " was removed)");
        return;
      }
      T message;
      try {
        message = wire.decode(value);
      } catch (Wire.Unreadable err) {
        unreadable++;
        say("unreadable record at " + where + ": " + err.getMessage());
        return;
      }
      if (kind.id() != null && !seen.add(kind.id().apply(message))) {
        repeated++;
        return;
      }
      out.print((json ? PythonJson.dumps(message) : kind.line().apply(message)) + "\n");
      out.flush();
      printed++;
    }

    String summary() {
      return "read " + (printed + repeated + unreadable + tombstones) + " records of " + kind.topic() + ": "
          + printed + " printed, " + repeated + " already printed, " + unreadable + " unreadable"
          + (kind.id() == null ? ", " + tombstones + " tombstones" : "");
    }
  }

  static void say(String text) {
    System.err.println(NAME + ": " + text);
    System.err.flush();
  }

  public static void main(String[] argv) throws Exception {
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
    int status = run(argv);
    if (!stopping) { // after a SIGTERM the JVM is already exiting: System.exit would block
      System.exit(status);
    }
  }

  /** Set by the shutdown hook (SIGTERM, Ctrl-C) that stops the consumer. */
  private static volatile boolean stopping;

  static int run(String[] argv) throws Exception {
    List<String> args = new ArrayList<>(List.of(argv));
    boolean decode = !args.isEmpty() && args.get(0).equals("decode");
    if (decode) {
      args.remove(0);
    }
    if (args.isEmpty() || args.contains("-h") || args.contains("--help")) {
      System.out.println(USAGE);
      return args.isEmpty() ? 2 : 0;
    }
    Kind<?> kind = kind(args.remove(0));
    String broker = System.getenv().getOrDefault("WORKERFILE_BROKER", "127.0.0.1:9092");
    String group = NAME;
    String registryUrl = System.getenv("WORKERFILE_SCHEMA_REGISTRY_URL");
    String kafkaConfig = null;
    boolean once = false;
    boolean json = false;
    for (int i = 0; i < args.size(); i++) {
      String arg = args.get(i);
      boolean hasValue = i + 1 < args.size();
      switch (arg) {
        case "--once" -> once = true;
        case "--json" -> json = true;
        case "--broker", "--group", "--registry", "--kafka-config" -> {
          if (!hasValue) {
            return usage(arg + " needs a value");
          }
          String value = args.get(++i);
          switch (arg) {
            case "--broker" -> broker = value;
            case "--group" -> group = value;
            case "--registry" -> registryUrl = value;
            default -> kafkaConfig = value;
          }
        }
        default -> {
          return usage("unknown argument " + arg);
        }
      }
    }
    if (kind == null) {
      return usage("the first argument is services, changes or files");
    }
    if (kind.line() == null && !json) {
      return usage("files is printed with --json only (a file has no one-line form; its JSON line carries the "
          + "whole number, as `workerfile subscribe --json` does)");
    }
    Registry registry = registryUrl == null || registryUrl.isEmpty() ? null : new Registry(registryUrl);
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    Printer<?> printer = new Printer<>(kind, json, registry, out);
    if (decode) {
      decodeLines(printer, System.in);
    } else {
      consume(printer, broker, group, once, kafkaConfig);
    }
    say(printer.summary());
    return 0;
  }

  static int usage(String problem) {
    System.err.println(NAME + ": " + problem);
    System.err.println(USAGE);
    return 2;
  }

  /** The decode command: one base64 value per line of standard input. */
  static void decodeLines(Printer<?> printer, InputStream in) throws IOException {
    BufferedReader lines = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
    String line;
    long n = 0;
    while ((line = lines.readLine()) != null) {
      n++;
      String text = line.strip();
      byte[] value;
      try {
        value = text.isEmpty() ? null : Base64.getDecoder().decode(text);
      } catch (IllegalArgumentException err) {
        printer.unreadable++;
        say("unreadable line " + n + ": not base64");
        continue;
      }
      printer.handle(null, value, "line " + n);
    }
  }

  static void consume(Printer<?> printer, String broker, String group, boolean once, String kafkaConfig)
      throws IOException {
    Properties config = new Properties();
    config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker);
    config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, NAME);
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    if (kafkaConfig != null) {
      try (InputStream in = new FileInputStream(kafkaConfig)) {
        config.load(in);
      }
    }
    ByteArrayDeserializer bytes = new ByteArrayDeserializer();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, bytes, bytes)) {
      Map<TopicPartition, Long> ends = new HashMap<>(); // --once: where each assigned partition ended
      consumer.subscribe(List.of(printer.kind.topic()), new ConsumerRebalanceListener() {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
          ends.keySet().removeAll(partitions);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
          if (once && !partitions.isEmpty()) {
            ends.putAll(consumer.endOffsets(partitions));
          }
        }
      });
      Thread main = Thread.currentThread();
      Thread stop = new Thread(() -> {
        stopping = true;
        consumer.wakeup();
        try {
          main.join(30_000);
        } catch (InterruptedException ignored) {
          Thread.currentThread().interrupt();
        }
      });
      Runtime.getRuntime().addShutdownHook(stop);
      try {
        while (true) {
          ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofSeconds(1));
          Map<TopicPartition, OffsetAndMetadata> done = new HashMap<>();
          for (ConsumerRecord<byte[], byte[]> record : records) {
            printer.handle(record.key(), record.value(),
                record.topic() + " partition " + record.partition() + " offset " + record.offset());
            done.put(new TopicPartition(record.topic(), record.partition()),
                new OffsetAndMetadata(record.offset() + 1));
          }
          if (!done.isEmpty()) {
            consumer.commitSync(done);
          }
          if (once && caughtUp(consumer, ends)) {
            return;
          }
        }
      } catch (WakeupException stopping) {
        // SIGTERM or Ctrl-C: what was printed is committed
      } finally {
        try {
          Runtime.getRuntime().removeShutdownHook(stop);
        } catch (IllegalStateException shuttingDown) {
          // the hook is running: it waits for this thread
        }
      }
    }
  }

  private static boolean caughtUp(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
    Set<TopicPartition> assigned = consumer.assignment();
    if (assigned.isEmpty()) {
      return false;
    }
    for (TopicPartition tp : assigned) {
      Long end = ends.get(tp);
      if (end == null || consumer.position(tp) < end) {
        return false;
      }
    }
    return true;
  }
}
