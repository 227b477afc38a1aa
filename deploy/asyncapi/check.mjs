// Checks an AsyncAPI document with the official parser (@asyncapi/parser) and, for every
// message payload in an Avro schema format, with @asyncapi/avro-schema-parser (avsc): for
// AsyncAPI 3 the parser itself does not validate payloads of other schema formats.
// Usage: node deploy/asyncapi/check.mjs docs/asyncapi.json
// Prints one JSON object: {"parsed": bool, "diagnostics": [{severity, code, message, path}],
// "avro": [{message, error}]} (severity 0 = error, 1 = warning, 2 = information, 3 = hint).
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const avro = AvroSchemaParser();
const parser = new Parser();
parser.registerSchemaParser(avro);
const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await parser.parse(text);
const report = {
  parsed: document !== undefined,
  diagnostics: diagnostics.map(d => ({ severity: d.severity, code: d.code, message: d.message, path: d.path.join("/") })),
  avro: [],
  avroChecked: 0,
};
const raw = JSON.parse(text);
for (const [name, message] of Object.entries(raw.components?.messages ?? {})) {
  const payload = message.payload ?? {};
  if (!avro.getMimeTypes().includes(payload.schemaFormat)) continue;
  const input = { data: payload.schema, path: ["components", "messages", name, "payload"], schemaFormat: payload.schemaFormat,
                  asyncapi: { semver: { major: 3, minor: 0, patch: 0 } }, meta: {} };
  report.avroChecked += 1;
  for (const problem of await avro.validate(input)) report.avro.push({ message: name, error: problem.message });
  try {
    await avro.parse(input);  // the JSON Schema the tooling derives from the Avro schema
  } catch (err) {
    report.avro.push({ message: name, error: `not convertible to a JSON Schema: ${err.message}` });
  }
}
console.log(JSON.stringify(report));
