// A ROC client built on the Node.js `soap` package, driven by PiANO's integration tests.
//
// Reads one JSON document on stdin:
//   {"wsdl": path, "ca": path, "cert": path, "key": path,
//    "calls": [{"operation": "IDB", "port": "IDB_Soap11", "url": "https://...",
//               "routage": "<rt:Routage ...>...</rt:Routage>" | null, "args": {...}}]}
// and prints one JSON line per call: {"ok": true, "result": {...}} or {"ok": false, "fault": ...}.
// The WSDL is consumed as is (roc/schemas/roc.wsdl, or roc-facturation.wsdl for billing, and
// the XSDs it imports).
'use strict';

const fs = require('fs');
const soap = require('soap');

function readStdin() {
  return fs.readFileSync(0, 'utf8');
}

let shared = null;

async function call(spec, item) {
  // One client (one WSDL parse) for every call; endpoint and header set per call.
  if (shared === null) {
    shared = await soap.createClientAsync(spec.wsdl);
  }
  const client = shared;
  client.setEndpoint(item.url);
  client.clearSoapHeaders();
  client.setSecurity(
    new soap.ClientSSLSecurity(
      fs.readFileSync(spec.key),
      fs.readFileSync(spec.cert),
      fs.readFileSync(spec.ca),
      { rejectUnauthorized: true },
    ),
  );
  if (item.routage) {
    client.addSoapHeader(item.routage);
  }
  const first = Object.keys(client.describe())[0];
  const service = first === 'RocService' || first === 'FacturationService' ? first : 'AnnuaireService';
  const method = client[service][item.port][item.operation];
  return new Promise((resolve) => {
    method(item.args, (err, result) => {
      if (err) {
        const body = err.body || (err.response && err.response.data) || '';
        resolve({ ok: false, status: err.response ? err.response.status : null, fault: err.root || null, body: String(body).slice(0, 2000) });
      } else {
        resolve({ ok: true, result });
      }
    });
  });
}

async function main() {
  const spec = JSON.parse(readStdin());
  for (const item of spec.calls) {
    let outcome;
    try {
      outcome = await call(spec, item);
    } catch (error) {
      outcome = { ok: false, error: String(error) };
    }
    process.stdout.write(JSON.stringify(outcome) + '\n');
  }
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
