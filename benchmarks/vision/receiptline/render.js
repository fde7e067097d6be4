// Render ReceiptLine documents to SVG (the independent test renderer of benchmarks/vision/ocr_testsets.py).
// stdin: one JSON object per line {"out": "path.svg", "doc": "...", "cpl": 42, "spacing": false};
// each document is written to its "out" path. Usage: node render.js NODE_MODULES_DIR < docs.jsonl
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const receiptline = require(path.join(process.argv[2], 'receiptline'));
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
    if (!line.trim()) return;
    const job = JSON.parse(line);
    const svg = receiptline.transform(job.doc, { cpl: job.cpl, encoding: 'cp437', spacing: job.spacing, command: 'svg' });
    fs.writeFileSync(job.out, svg);
});
