// vendor.mjs copies the chart library's browser files into the embedded
// assets, from the exact tarball package-lock.json pins: the tarball is
// fetched with `npm pack` (npm's cache first), its sha512 must equal the
// lockfile's integrity, and only then are its files compared with, or
// copied to, assets/vendor/.
//
//	node scripts/vendor.mjs          copy (what `make build` runs)
//	node scripts/vendor.mjs --check  fail if the committed copies differ
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const check = process.argv.includes('--check');
// package → files of its tarball to embed, and their names in assets/vendor/.
const wanted = {
  uplot: { 'package/dist/uPlot.iife.min.js': 'uPlot.iife.min.js', 'package/dist/uPlot.min.css': 'uPlot.min.css' },
};

const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
const tmp = mkdtempSync(join(tmpdir(), 'connlog-vendor-'));
let failed = false;
try {
  for (const [name, files] of Object.entries(wanted)) {
    const entry = lock.packages[`node_modules/${name}`];
    if (!entry || !entry.integrity?.startsWith('sha512-')) throw new Error(`${name}: no sha512 integrity in package-lock.json`);
    const out = execFileSync('npm', ['pack', `${name}@${entry.version}`, '--prefer-offline', '--silent', '--pack-destination', tmp], { encoding: 'utf8' }).trim().split('\n').pop();
    const tarball = join(tmp, out);
    const got = 'sha512-' + createHash('sha512').update(readFileSync(tarball)).digest('base64');
    if (got !== entry.integrity) throw new Error(`${name}@${entry.version}: tarball ${got} does not match the lockfile's ${entry.integrity}`);
    execFileSync('tar', ['-xzf', tarball, '-C', tmp, ...Object.keys(files)]);
    for (const [from, to] of Object.entries(files)) {
      const data = readFileSync(join(tmp, from));
      const dest = join(here, 'assets', 'vendor', to);
      if (check) {
        if (!existsSync(dest) || !readFileSync(dest).equals(data)) {
          console.error(`vendor: assets/vendor/${to} differs from ${name}@${entry.version} (${entry.integrity}); run node scripts/vendor.mjs`);
          failed = true;
        }
      } else if (!existsSync(dest) || !readFileSync(dest).equals(data)) {
        writeFileSync(dest, data);
        console.error(`vendor: assets/vendor/${to} from ${name}@${entry.version}`);
      }
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
