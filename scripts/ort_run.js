#!/usr/bin/env node
// Run an ONNX model with onnxruntime-node (CPU) as the reference / peer runtime.
//
//   node scripts/ort_run.js MODEL.onnx [--input name=file.npy,...] [--output_dir DIR]
//        [--threads T (1)] [--iterations I (10)] [--warmup W (2)]
//        [--batch B (1) --seq S (128) --vocab V --seed N (0)]   (generated inputs)
//
// Inputs not given with --input are generated as our engine does: ids uniform in
// [0, vocab) (vocab from --vocab, else meta.json beside the model, else the first dim of
// the Gather table fed by input_ids, read from the ONNX protobuf), masks all ones,
// token types zeros. Session: intraOpNumThreads=T, interOpNumThreads=1, graph
// optimisation level "all", sequential execution, CPU EP.
// Writes every output as DIR/<name>.npy; prints human lines, then one JSON line last:
// {latency_ms:{mean,p50,p90,p99} (per run = per batch), latency_per_sample_ms,
//  throughput (samples/s), batch, seq, threads, iterations, warmup, ...}.
// Install the runtime with scripts/install_ort.sh.
'use strict';
const fs = require('fs');
const path = require('path');

function loadOrt() {
  const dir = path.join(__dirname, '..', 'third_party', 'ort', 'node_modules', 'onnxruntime-node');
  try { return require(dir); } catch (e) {
    try { return require('onnxruntime-node'); } catch (e2) {
      console.error(`cannot load onnxruntime-node (${e.message}); run scripts/install_ort.sh`);
      process.exit(2);
    }
  }
}

// ------------------------------------------------------------------ npy
const NPY_DT = {
  '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array], '<f4': ['float32', Float32Array],
  '<f8': ['float64', Float64Array], '|b1': ['bool', Uint8Array], '|u1': ['uint8', Uint8Array],
  '|i1': ['int8', Int8Array],
};
const DT_NPY = { int64: '<i8', int32: '<i4', float32: '<f4', float64: '<f8', bool: '|b1', uint8: '|u1', int8: '|i1' };

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.readUInt32BE(0) !== 0x934e554d || buf.toString('latin1', 4, 6) !== 'PY')
    throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: fortran order not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const dt = NPY_DT[descr];
  if (!dt) throw new Error(`${file}: dtype ${descr} not supported`);
  const off = hstart + hlen;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new dt[1](n);
  new Uint8Array(data.buffer).set(buf.subarray(off, off + n * data.BYTES_PER_ELEMENT));
  return { type: dt[0], shape, data };
}

function writeNpy(file, type, shape, data) {
  const descr = DT_NPY[type];
  if (!descr) throw new Error(`cannot write dtype ${type}`);
  const shp = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shp}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.writeUInt32BE(0x934e554d, 0); pre.write('PY', 4, 'latin1'); pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

function convert(t, want) {
  if (t.type === want) return t;
  const Ctor = NPY_DT[DT_NPY[want]][1];
  const out = new Ctor(t.data.length);
  const toBig = want === 'int64', fromBig = t.type === 'int64';
  for (let i = 0; i < t.data.length; i++) {
    const v = fromBig ? Number(t.data[i]) : t.data[i];
    out[i] = toBig ? BigInt(Math.trunc(v)) : v;
  }
  return { type: want, shape: t.shape, data: out };
}

// ------------------------------------------------------------------ minimal ONNX protobuf scan
// Finds the vocabulary size: dims[0] of the initializer that a Gather indexes with input_ids.
function readVarint(b, p) {
  let v = 0, mul = 1, byte;
  do { byte = b[p.i++]; v += (byte & 0x7f) * mul; mul *= 128; } while (byte & 0x80);
  return v;
}
function fields(b, start, end, cb) {
  const p = { i: start };
  while (p.i < end) {
    const key = readVarint(b, p), fno = Math.floor(key / 8), wt = key & 7;
    if (wt === 0) cb(fno, wt, readVarint(b, p));
    else if (wt === 1) { p.i += 8; }
    else if (wt === 5) { p.i += 4; }
    else if (wt === 2) { const len = readVarint(b, p); cb(fno, wt, [p.i, p.i + len]); p.i += len; }
    else throw new Error(`bad protobuf wire type ${wt}`);
  }
}
function vocabFromOnnx(file, inputName) {
  const b = fs.readFileSync(file);
  const dims = {}; const gathers = [];
  fields(b, 0, b.length, (f, wt, v) => {
    if (f !== 7 || wt !== 2) return; // ModelProto.graph
    fields(b, v[0], v[1], (gf, gwt, gv) => {
      if (gwt !== 2) return;
      if (gf === 1) { // NodeProto
        const node = { input: [], op: '' };
        fields(b, gv[0], gv[1], (nf, nwt, nv) => {
          if (nf === 1 && nwt === 2) node.input.push(b.toString('utf8', nv[0], nv[1]));
          if (nf === 4 && nwt === 2) node.op = b.toString('utf8', nv[0], nv[1]);
        });
        if (node.op === 'Gather') gathers.push(node);
      } else if (gf === 5) { // TensorProto
        let name = ''; const d = [];
        fields(b, gv[0], gv[1], (tf, twt, tv) => {
          if (tf === 8 && twt === 2) name = b.toString('utf8', tv[0], tv[1]);
          if (tf === 1 && twt === 0) d.push(tv);
          if (tf === 1 && twt === 2) { const p = { i: tv[0] }; while (p.i < tv[1]) d.push(readVarint(b, p)); }
        });
        dims[name] = d;
      }
    });
  });
  for (const g of gathers) if (g.input[1] === inputName && dims[g.input[0]]) return dims[g.input[0]][0];
  return null;
}

// ------------------------------------------------------------------ args
function parseArgs(argv) {
  const a = { model: null, input: {}, output_dir: null, threads: 1, iterations: 10, warmup: 2,
              batch: 1, seq: 128, vocab: null, seed: 0 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => { if (i + 1 >= argv.length) throw new Error(`${k} needs a value`); return argv[++i]; };
    if (k === '--input') {
      for (const kv of val().split(',').filter(s => s)) {
        const j = kv.indexOf('=');
        if (j < 0) throw new Error(`--input wants name=file.npy, got ${kv}`);
        a.input[kv.slice(0, j)] = kv.slice(j + 1);
      }
    } else if (k === '--output_dir') a.output_dir = val();
    else if (['--threads', '--iterations', '--warmup', '--batch', '--seq', '--vocab', '--seed'].includes(k))
      a[k.slice(2)] = parseInt(val(), 10);
    else if (k === '-h' || k === '--help') {
      console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 17).map(l => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    } else if (k.startsWith('--')) throw new Error(`unknown flag ${k}`);
    else if (!a.model) a.model = k;
    else throw new Error(`unexpected argument ${k}`);
  }
  if (!a.model) throw new Error('usage: ort_run.js MODEL.onnx [flags]; --help');
  return a;
}

function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  const r = (p / 100) * (sorted.length - 1), lo = Math.floor(r), hi = Math.ceil(r);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (r - lo);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const ort = loadOrt();
  const t0 = process.hrtime.bigint();
  const sess = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential', executionProviders: ['cpu'],
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const meta = {};
  for (const m of sess.inputMetadata || []) meta[m.name] = m;

  const feeds = {};
  let batch = null, seq = null;
  for (const name of sess.inputNames) {
    const want = (meta[name] && meta[name].type) || 'int64';
    let t;
    if (a.input[name]) {
      t = convert(readNpy(a.input[name]), want);
    } else {
      const n = a.batch * a.seq;
      let vals;
      if (/mask/.test(name)) vals = new Array(n).fill(1);
      else if (/type/.test(name)) vals = new Array(n).fill(0);
      else {
        let vocab = a.vocab;
        if (!vocab) {
          const mj = path.join(path.dirname(a.model), 'meta.json');
          if (fs.existsSync(mj)) { try { vocab = JSON.parse(fs.readFileSync(mj, 'utf8')).config.vocab; } catch (e) { } }
        }
        if (!vocab) vocab = vocabFromOnnx(a.model, name);
        if (!vocab) throw new Error(`cannot find the vocabulary size of ${a.model}; pass --vocab`);
        const rnd = mulberry32(a.seed);
        vals = Array.from({ length: n }, () => Math.floor(rnd() * vocab));
      }
      t = convert({ type: 'float64', shape: [a.batch, a.seq], data: Float64Array.from(vals) }, want);
    }
    if (batch === null && t.shape.length >= 2) { batch = t.shape[0]; seq = t.shape[1]; }
    feeds[name] = new ort.Tensor(t.type, t.data, t.shape);
  }
  for (const k of Object.keys(a.input))
    if (!sess.inputNames.includes(k)) throw new Error(`model has no input ${k} (inputs: ${sess.inputNames})`);

  let out;
  for (let i = 0; i < a.warmup; i++) out = await sess.run(feeds);
  const lat = [];
  for (let i = 0; i < a.iterations; i++) {
    const s = process.hrtime.bigint();
    out = await sess.run(feeds);
    lat.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  if (!out) out = await sess.run(feeds);

  if (a.output_dir) {
    fs.mkdirSync(a.output_dir, { recursive: true });
    for (const name of sess.outputNames) {
      const t = out[name];
      writeNpy(path.join(a.output_dir, name.replace(/[^A-Za-z0-9_.-]/g, '_') + '.npy'), t.type, t.dims, t.data);
    }
  }
  const sorted = lat.slice().sort((x, y) => x - y);
  const mean = lat.length ? lat.reduce((x, y) => x + y, 0) / lat.length : NaN;
  const res = {
    runtime: 'onnxruntime-node', ort_version: ort.env.versions.common, model: a.model,
    batch, seq, threads: a.threads, iterations: a.iterations, warmup: a.warmup, load_ms: loadMs,
    latency_ms: { mean, p50: pct(sorted, 50), p90: pct(sorted, 90), p99: pct(sorted, 99),
                  min: sorted[0], max: sorted[sorted.length - 1] },
    latency_per_sample_ms: mean / batch,
    throughput: (batch * 1000) / mean,
    outputs: sess.outputNames.map(n => ({ name: n, type: out[n].type, shape: out[n].dims })),
  };
  console.log(` Batch Size is ${batch}`);
  console.log(` Latency is ${(mean / batch).toFixed(3)} ms (per sample; ${mean.toFixed(3)} ms per batch)`);
  console.log(` Throughput is ${res.throughput.toFixed(2)}`);
  console.log(JSON.stringify(res));
}

main().catch(e => { console.error(`ort_run.js: ${e.message}`); process.exit(1); });
