// Validate glb files with the Khronos glTF-Validator; prints one JSON report line per file.
// Usage: node validate_gltf.mjs FILE...
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(process.cwd() + "/");
const validator = require("gltf-validator");

for (const path of process.argv.slice(2)) {
  const bytes = new Uint8Array(await readFile(path));
  const report = await validator.validateBytes(bytes, { uri: path, maxIssues: 50 });
  const issues = report.issues;
  console.log(JSON.stringify({
    path,
    errors: issues.numErrors,
    warnings: issues.numWarnings,
    infos: issues.numInfos,
    messages: issues.messages.map((m) => `${m.severity}:${m.code}:${m.pointer ?? ""}:${m.message}`),
  }));
}
