// Reads a JSON array of Kubernetes objects on stdin and validates each KafkaTopic (Strimzi) and
// Cluster (CloudNativePG) with the models generated from the operators' published CRDs: types,
// enums, bounds and required fields. Prints one line per object; exits 1 when any is invalid.
import { KafkaTopic } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaTopic";
import { Cluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster";

const MODELS = {
  "kafka.strimzi.io/v1beta2/KafkaTopic": KafkaTopic,
  "postgresql.cnpg.io/v1/Cluster": Cluster,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let failed = 0;
for (const object of objects) {
  const key = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[key];
  if (!Model) {
    console.log(`unknown ${key}`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`valid ${key} ${object.metadata.name}`);
  } catch (error) {
    console.log(`invalid ${key} ${object.metadata.name}: ${error.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
