// OpenFeature's official OFREP provider for Node, run against `pipit up
// --ofrep` on a flag rollout: hack/test-ofrep-node.sh installs it and
// gives the pipit binary in PIPIT_BIN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const bin = process.env.PIPIT_BIN;
const rollout = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  flag:
    key: new-checkout
    variants: {on: true, off: false}
    defaultVariant: off
  strategy:
    steps: [{setWeight: 50}, {pause: {}}]
`;

// pipitUp starts pipit up --ofrep on the rollout and waits until it is up.
async function pipitUp(t) {
  const dir = mkdtempSync(join(tmpdir(), 'pipit-ofrep-'));
  writeFileSync(join(dir, 'flag.yaml'), rollout);
  const up = spawn(bin, ['up', '--state-dir', dir, '--api', '127.0.0.1:0', '--ofrep', '127.0.0.1:0', '-f', join(dir, 'flag.yaml')], { stdio: 'inherit' });
  t.after(() => up.kill());
  for (let i = 0; i < 1500 && !existsSync(join(dir, 'api-address')); i++) await sleep(20);
  assert.ok(existsSync(join(dir, 'api-address')), 'pipit up did not start');
  const read = (f) => readFileSync(join(dir, f), 'utf8').trim();
  const pipit = (...args) => execFileSync(bin, [...args, '--state-dir', dir], { encoding: 'utf8', timeout: 15000 });
  return { url: `http://${read('ofrep-address')}`, token: read('ofrep-token'), pipit };
}

async function waitFor(pipit, what, cond) {
  for (let i = 0; i < 300; i++) {
    const status = JSON.parse(pipit('status', 'web', '-o', 'json')).status;
    if (cond(status)) return status;
    await sleep(100);
  }
  assert.fail(`${what} not reached`);
}

test('the official OFREP provider reads a flag pipit rolls out', async (t) => {
  assert.ok(bin, 'PIPIT_BIN names the pipit binary');
  const { url, token, pipit } = await pipitUp(t);
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: url, headers: { Authorization: `Bearer ${token}` } }));
  t.after(() => OpenFeature.close());
  const client = OpenFeature.getClient();

  let d = await client.getBooleanDetails('new-checkout', true, { targetingKey: 'user-1' });
  assert.deepEqual([d.value, d.variant, d.reason, d.errorCode], [false, 'off', 'DEFAULT', undefined]);

  pipit('deploy', 'web', '--version', 'on');
  await waitFor(pipit, 'the pause at 50%', (s) => s.phase === 'AwaitingDecision');
  let on = 0;
  for (let i = 0; i < 400; i++) {
    const first = await client.getBooleanDetails('new-checkout', false, { targetingKey: `user-${i}` });
    const again = await client.getBooleanDetails('new-checkout', false, { targetingKey: `user-${i}`, plan: 'gold' });
    assert.equal(first.reason, 'SPLIT');
    assert.equal(again.value, first.value, `user-${i} changed variant between two evaluations`);
    if (first.value) on++;
  }
  assert.ok(on > 400 * 0.44 && on < 400 * 0.56, `${on} of 400 users on at 50%`);

  d = await client.getBooleanDetails('new-checkout', false, {});
  assert.equal(d.errorCode, 'TARGETING_KEY_MISSING');
  d = await client.getBooleanDetails('nope', true, { targetingKey: 'user-1' });
  assert.deepEqual([d.value, d.errorCode], [true, 'FLAG_NOT_FOUND']);

  pipit('abort', 'web');
  await waitFor(pipit, 'the abort', (s) => s.phase === 'Aborted');
  for (let i = 0; i < 50; i++) {
    d = await client.getBooleanDetails('new-checkout', true, { targetingKey: `user-${i}` });
    assert.deepEqual([d.value, d.reason], [false, 'DISABLED']);
  }
});
