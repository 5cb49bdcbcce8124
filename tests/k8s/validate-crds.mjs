// Validates KEDA's custom resources against KEDA's own schemas (@kubernetes-models/keda, made
// from KEDA's API types), which the Kubernetes schemas of kubernetes-validate do not have.
// Usage: node validate-crds.mjs FILE.json...   (each file one resource, as JSON)
// Prints one line per resource; exits 1 if any is invalid or of a kind it has no schema for.
import { readFileSync } from 'node:fs';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';

const models = {
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
};

let failed = false;
for (const file of process.argv.slice(2)) {
  const resource = JSON.parse(readFileSync(file, 'utf8'));
  const kind = `${resource.apiVersion}/${resource.kind}`;
  const name = `${kind} ${resource.metadata?.name}`;
  const Model = models[kind];
  if (!Model) {
    console.log(`ERROR ${name}: no schema for this kind here`);
    failed = true;
    continue;
  }
  try {
    new Model(resource).validate();
    console.log(`INFO ${name} passed`);
  } catch (error) {
    console.log(`ERROR ${name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
