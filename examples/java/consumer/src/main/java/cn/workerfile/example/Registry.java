package cn.workerfile.example;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.avro.Schema;

/**
 * Writer schemas by id from a schema registry's Confluent-compatible REST API
 * ({@code GET <url>/schemas/ids/<id>}, answered {@code {"schema": "<the schema as a JSON
 * string>", ...}}); for Apicurio Registry the URL is {@code http://host:port/apis/ccompat/v7}.
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
    HttpRequest request = HttpRequest.newBuilder(URI.create(base + "/schemas/ids/" + Integer.toUnsignedString(id)))
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
    JsonNode body = json.readTree(response.body());
    JsonNode text = body.get("schema");
    if (text == null || !text.isTextual()) {
      throw new IOException(request.uri() + " answered no \"schema\"");
    }
    JsonNode type = body.get("schemaType");
    if (type != null && !"AVRO".equals(type.asText())) {
      throw new IOException("schema id " + id + " is " + type.asText() + ", not AVRO");
    }
    schema = new Schema.Parser().parse(text.asText());
    cache.put(id, schema);
    return schema;
  }
}
