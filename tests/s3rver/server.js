// s3rver on 127.0.0.1 and a free port, with one bucket (argv[2]) and its files in a
// temporary directory. Prints `listening http://127.0.0.1:<port>` once it accepts requests,
// and stops (removing the directory) when its standard input closes.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const S3rver = require('s3rver');

async function main() {
  const bucket = process.argv[2] || 'careplane-files';
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'careplane-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { address, port } = await server.run();
  process.stdout.write(`listening http://${address}:${port}\n`);
  const stop = async () => {
    await server.close();
    fs.rmSync(directory, { recursive: true, force: true });
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
