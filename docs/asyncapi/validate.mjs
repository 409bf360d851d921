// Validates an AsyncAPI document with the official parser (@asyncapi/parser: the schema of the
// spec, its JSON Schema payloads, $refs and the Spectral rules the AsyncAPI CLI applies).
// Usage: node validate.mjs [--verbose] FILE. Exits 1 when the document has errors or warnings (this
// project keeps its document free of both) and prints them with their line and path; --verbose
// prints the parser's hints too (such as "3.1.0 is the latest version": the document is 3.0.0).
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];

const args = process.argv.slice(2);
const verbose = args.includes("--verbose");
const file = args.find((arg) => !arg.startsWith("--"));
if (!file) {
  console.error("usage: node validate.mjs [--verbose] FILE");
  process.exit(2);
}
const path = resolve(file);
await readFile(path); // a clear ENOENT before the parser's own message

const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, path).parse();
let failing = 0;
for (const d of diagnostics) {
  const severity = SEVERITY[d.severity] ?? String(d.severity);
  if (d.severity <= 1) failing += 1;
  else if (!verbose) continue;
  const where = d.path && d.path.length ? d.path.join(".") : "(document)";
  const line = d.range ? `:${d.range.start.line + 1}` : "";
  console.error(`${file}${line} ${severity} ${d.code}: ${d.message} at ${where}`);
}
if (!document || failing > 0) {
  console.error(`${file}: invalid AsyncAPI document (${failing} errors or warnings)`);
  process.exit(1);
}
const channels = document.channels().length;
const operations = document.operations().length;
const messages = document.components().messages().length;
console.error(
  `${file}: valid AsyncAPI ${document.version()} (${channels} channels, ${operations} operations, ${messages} messages)`,
);
