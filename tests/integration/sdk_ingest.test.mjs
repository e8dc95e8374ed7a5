// The real OpenTelemetry JS SDK exporters (OTLP/gRPC, OTLP/HTTP protobuf, OTLP/HTTP JSON, each
// plain and gzip) send spans to the real binary; every span the generator made must be counted
// as received, none rejected, every export acknowledged, every span processed by the pipeline;
// then `promtool check metrics` accepts the /metrics text.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { EXPORTERS, promtoolCheckMetrics, sendSpansWithSdk, startTraceslo } from '../clients/lib.mjs';

const SPANS = 1000;
const TRANSPORT = { grpc: 'grpc', proto: 'http', http: 'http' };
const OK_CODE = { grpc: 'OK', http: '200' };

let server;
before(async () => {
  server = await startTraceslo();
});
after(async () => {
  await server?.cleanup();
});

for (const exporter of EXPORTERS) {
  for (const gzip of [false, true]) {
    test(`${exporter} exporter${gzip ? ' with gzip' : ''}: all ${SPANS} spans are received`, async (t) => {
      const transport = TRANSPORT[exporter];
      const m0 = await server.scrape();
      const summary = await sendSpansWithSdk({
        exporter,
        endpoint: exporter === 'grpc' ? server.grpcUrl : server.tracesUrl,
        spans: SPANS,
        services: 3,
        errorRatio: 0.1,
        gzip,
        batchSize: 128,
      });
      t.diagnostic(JSON.stringify(summary));
      assert.equal(summary.spans_sent, SPANS);
      assert.deepEqual({ exports_failed: summary.exports_failed, errors: summary.errors },
        { exports_failed: 0, errors: [] }, 'every export must succeed');
      assert.equal(summary.spans_exported, SPANS, 'the exporters acknowledged every span');
      assert.ok(summary.exports_ok >= 6, `several batches per exporter (got ${summary.exports_ok} exports)`);

      const r0 = m0.get('traceslo_spans_received_total', { transport });
      const received = await server.pollMetric('traceslo_spans_received_total', { transport },
        (v) => v - r0 >= SPANS);
      assert.equal(received - r0, SPANS, `traceslo_spans_received_total{transport="${transport}"} delta`);

      const m1 = await server.scrape();
      assert.deepEqual(m1.series('traceslo_spans_rejected_total').filter((s) => s.value !== 0), [],
        'no span rejected, for any reason');
      const requests = (m, labels) => m.get('traceslo_otlp_requests_total', { transport, ...labels });
      assert.equal(requests(m1, { code: OK_CODE[transport] }) - requests(m0, { code: OK_CODE[transport] }),
        summary.exports_ok, `traceslo_otlp_requests_total{transport="${transport}",code="${OK_CODE[transport]}"} ` +
        'delta equals the successful exports');
      assert.equal(requests(m1) - requests(m0), summary.exports_ok, 'no request answered with another code');
    });
  }
}

test('the pipeline processes every received span and empties its queues', async () => {
  const m = await server.scrape();
  const received = m.get('traceslo_spans_received_total');
  assert.equal(received, EXPORTERS.length * 2 * SPANS);
  const processed = await server.pollMetric('traceslo_pipeline_spans_processed_total', {},
    (v) => v >= received);
  assert.equal(processed, received, 'sum of traceslo_pipeline_spans_processed_total over shards');
  const queued = await server.pollMetric('traceslo_pipeline_queue_spans', {}, (v) => v === 0);
  assert.equal(queued, 0, 'sum of traceslo_pipeline_queue_spans over shards');
});

test('/metrics passes promtool check metrics and has the documented families', async () => {
  const m = await server.scrape();
  for (const name of ['traceslo_spans_received_total', 'traceslo_otlp_requests_total',
    'traceslo_pipeline_queue_spans', 'traceslo_pipeline_spans_processed_total', 'traceslo_build_info']) {
    assert.ok(m.has(name), `${name} is exported`);
  }
  const info = m.series('traceslo_build_info');
  assert.equal(info.length, 1, 'one traceslo_build_info series');
  assert.equal(info[0].value, 1);
  assert.ok(info[0].labels.version, 'traceslo_build_info has a non-empty version label');
  assert.deepEqual(Object.keys(m.series('traceslo_pipeline_queue_spans')[0].labels), ['shard']);

  const { status, output } = promtoolCheckMetrics(m.text);
  assert.equal(output.trim(), '', `promtool check metrics printed problems:\n${output}`);
  assert.equal(status, 0, `promtool check metrics exit status\n${output}`);
});
