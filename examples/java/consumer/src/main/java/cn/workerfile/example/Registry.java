package cn.workerfile.example;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.avro.Schema;

/**
 * Writer schemas by id from a schema registry's Confluent-compatible REST API
 * ({@code GET <url>/schemas/ids/<id>}, answered {@code {"schema": "<the schema as a JSON
 * string>", ...}}); for Apicurio Registry the URL is {@code http://host:port/apis/ccompat/v7}.
 * A schema registered with references (Confluent's {@code "references": [{name, subject,
 * version}]}) is parsed after the referenced ones ({@code GET <url>/subjects/<s>/versions/<v>}).
 * Each id is fetched once: an id names one schema for ever.
 */
final class Registry {
  private final String base;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
  private final ObjectMapper json = new ObjectMapper();
  private final Map<Integer, Schema> cache = new HashMap<>();

  Registry(String url) {
    this.base = url.replaceAll("/+$", "");
  }

  Schema schemaById(int id) throws IOException {
    Schema schema = cache.get(id);
    if (schema != null) {
      return schema;
    }
    JsonNode body = get("/schemas/ids/" + Integer.toUnsignedString(id));
    JsonNode type = body.get("schemaType");
    if (type != null && !"AVRO".equals(type.asText())) {
      throw new IOException("schema id " + id + " is " + type.asText() + ", not AVRO");
    }
    // a schema registered with references to other subjects: those first, into the same parser
    Schema.Parser parser = new Schema.Parser();
    addReferences(parser, body.get("references"), new HashSet<>());
    schema = parser.parse(text(body, "schema id " + id));
    cache.put(id, schema);
    return schema;
  }

  private void addReferences(Schema.Parser parser, JsonNode references, Set<String> done) throws IOException {
    if (references == null || !references.isArray()) {
      return;
    }
    for (JsonNode reference : references) {
      String subject = reference.path("subject").asText();
      String version = reference.path("version").asText();
      if (!done.add(subject + "/" + version)) {
        continue;
      }
      JsonNode body = get("/subjects/" + URLEncoder.encode(subject, StandardCharsets.UTF_8).replace("+", "%20")
          + "/versions/" + URLEncoder.encode(version, StandardCharsets.UTF_8));
      addReferences(parser, body.get("references"), done);
      parser.parse(text(body, "subject " + subject + " version " + version));
    }
  }

  private static String text(JsonNode body, String what) throws IOException {
    JsonNode text = body.get("schema");
    if (text == null || !text.isTextual()) {
      throw new IOException("the registry answered no \"schema\" for " + what);
    }
    return text.asText();
  }

  private JsonNode get(String path) throws IOException {
    HttpRequest request = HttpRequest.newBuilder(URI.create(base + path))
        .header("Accept", "application/vnd.schemaregistry.v1+json, application/json")
        .timeout(Duration.ofSeconds(30)).GET().build();
    HttpResponse<String> response;
    try {
      response = http.send(request, HttpResponse.BodyHandlers.ofString());
    } catch (InterruptedException err) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", err);
    }
    if (response.statusCode() != 200) {
      throw new IOException(request.uri() + " answered " + response.statusCode());
    }
    return json.readTree(response.body());
  }
}
