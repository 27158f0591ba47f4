// The official OpenAI SDK (npm `openai`) against agentd's HTTP door: what an app written for
// OpenAI does after changing only base_url and the key. Run by run.sh (which starts agentd).
//
//   node openai_sdk_test.mjs PATH/TO/node_modules/openai/index.js
// Env: OPENAI_BASE_URL, AGENTD_KEY, AGENTD_ADDR (gRPC, for agentctl), AGENTCTL.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const sdk = require(process.argv[2]);
const OpenAI = sdk.OpenAI ?? sdk.default;

const baseURL = process.env.OPENAI_BASE_URL;
const key = process.env.AGENTD_KEY;
const client = new OpenAI({ apiKey: key, baseURL, maxRetries: 0 });

function agentctl(...args) {
  const out = execFileSync(process.env.AGENTCTL,
    ['--addr', process.env.AGENTD_ADDR, '--api-key', key, '-o', 'json', ...args],
    { encoding: 'utf8' });
  return JSON.parse(out);
}

const weatherTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

const tests = {
  async multiTurnThroughPreviousResponseId() {
    const r1 = await client.responses.create({ model: 'echo', input: 'hello there', instructions: 'be brief' });
    assert.equal(r1.status, 'completed');
    assert.equal(r1.output_text, 'hello there');
    assert.ok(r1.usage.total_tokens > 0);
    const r2 = await client.responses.create({
      model: 'echo', previous_response_id: r1.id,
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'second turn' }] }],
    });
    assert.equal(r2.output_text, 'second turn');
    assert.equal(r2.conversation.id, r1.conversation.id);
    const again = await client.responses.retrieve(r1.id);
    assert.equal(again.output_text, 'hello there');

    // The same session through gRPC (agentctl): an ordinary session with both turns.
    const events = agentctl('events', r1.conversation.id);
    const list = Array.isArray(events) ? events : (events.events ?? []);
    const texts = list.filter((e) => e.message && (e.message.role === 'ROLE_USER' || e.message.role === 1))
      .map((e) => e.message.text);
    assert.deepEqual(texts, ['hello there', 'second turn']);
  },

  async functionToolRoundTrip() {
    const r1 = await client.responses.create({
      model: 'echo', tools: [weatherTool], input: '/tool get_weather {"city":"Paris"}',
    });
    const call = r1.output.find((i) => i.type === 'function_call');
    assert.ok(call, JSON.stringify(r1.output));
    assert.equal(call.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
    const r2 = await client.responses.create({
      model: 'echo', tools: [weatherTool], previous_response_id: r1.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
    });
    assert.equal(r2.output_text, 'sunny');
  },

  async streamingWithTheSdkHelpers() {
    const deltas = [];
    const stream = client.responses.stream({ model: 'echo', input: 'streamed words' });
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    assert.equal(deltas.join(''), 'streamed words');
    assert.equal(final.output_text, 'streamed words');

    // Raw event iteration: ordered, with sequence numbers.
    const events = await client.responses.create({ model: 'echo', input: 'abc', stream: true });
    const seen = [];
    for await (const e of events) seen.push(e);
    assert.equal(seen[0].type, 'response.created');
    assert.equal(seen.at(-1).type, 'response.completed');
    seen.forEach((e, i) => assert.equal(e.sequence_number, i));
  },

  async chatCompletions() {
    const c = await client.chat.completions.create({
      model: 'echo', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'ping' }],
    });
    assert.equal(c.choices[0].message.content, 'ping');
    assert.ok(c.usage.total_tokens > 0);
    const stream = client.chat.completions.stream({ model: 'echo', messages: [{ role: 'user', content: 'pong' }] });
    const final = await stream.finalChatCompletion();
    assert.equal(final.choices[0].message.content, 'pong');
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    assert.ok(models.includes('echo'), models.join(','));
  },

  async wrongKeyIsAuthenticationError() {
    const bad = new OpenAI({ apiKey: 'agd-not-a-key', baseURL, maxRetries: 0 });
    await assert.rejects(bad.responses.create({ model: 'echo', input: 'x' }),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    const otherProject = new OpenAI({ apiKey: key, baseURL, maxRetries: 0, project: 'someone-else' });
    await assert.rejects(otherProject.models.list(),
      (e) => e instanceof OpenAI.PermissionDeniedError && e.status === 403);
    await assert.rejects(client.responses.retrieve('resp_missing'),
      (e) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(client.responses.create({ model: 'echo', input: 42 }),
      (e) => e instanceof OpenAI.BadRequestError && e.error?.param === 'input');
  },

  // Last: it exhausts the project's budget.
  async exhaustedBudgetIsRateLimitError() {
    agentctl('limits', 'set', '--daily-token-limit', '1');
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 3; i++) await client.responses.create({ model: 'echo', input: 'spend' });
      })(),
      (e) => e instanceof OpenAI.RateLimitError && e.status === 429);
    await assert.rejects(
      client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.RateLimitError);
  },
};

let failed = 0;
for (const [name, fn] of Object.entries(tests)) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}
console.log(`${Object.keys(tests).length - failed}/${Object.keys(tests).length} passed`);
process.exit(failed ? 1 : 0);
