// SPDX-License-Identifier: MIT
//
// The page of `fwire serve` in headless Chromium, driven by playwright-core. Run by
// check-browser.sh, which starts the server and passes everything in the environment:
//   FW_BROWSER_BASE      http://127.0.0.1:PORT of the running `fwire serve`
//   FW_BROWSER_TOKEN     its --token ("" when it has none)
//   FW_BROWSER_PW        the playwright-core package directory
//   FW_CHROMIUM          the Chromium binary
//   FW_BROWSER_SHOT      where to write the screenshot (PNG)
//   FW_BROWSER_FIXTURE_ROWS  psql's rows of v_fixture, one JSON value a line
//   FW_BROWSER_FILTERED_ROWS psql's rows of v_bench_100k where id < 100, order by id desc,
//                        limit 30
//   FW_BROWSER_N_FIXTURE, FW_BROWSER_N_100K, FW_BROWSER_N_1M  psql's row counts
// The server must allow fixture, fixture_error_mid, bench_100k and bench_1m.
//
// Checks, each printed as "ok N - ..." or "not ok N - ...": without the token (or with a wrong
// one) the page shows the socket closed and says why; with it, fixture streams to 100 % and the
// rows shown are psql's, and so are those of a filtered, ordered, limited query; bench_100k
// streams to 100 % with the row counter equal to psql's count while the rows box never holds
// more than 50 rows; a mid-stream SQL error and a refused entity show code, SQLSTATE and
// message; bench_1m is paused (the counter stops), a second stream completes meanwhile, bench_1m
// resumes, then is cancelled and its card says so; a closed socket offers Reconnect, which
// works. The entity suggestions are the server's --allow list; the filter form (path, operator,
// value) gives psql's rows as the JSON box does; a planner estimate that is passed turns the bar
// indeterminate; Rows/s is live from the first batch. The form is driven through its labels,
// so they must exist. A full-page screenshot is
// saved at the end, pass or fail.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';

const KEEP_ROWS = 50;   // rows a card keeps (tools/web/app.js)
const FINAL = ['completed', 'cancelled', 'error', 'disconnected'];

function env(k) {
  const v = process.env[k];
  if (v === undefined) {
    console.log(`not ok - ${k} is not set (run me through check-browser.sh)`);
    process.exit(1);
  }
  return v;
}
const base = env('FW_BROWSER_BASE');
const token = env('FW_BROWSER_TOKEN');
const shot = env('FW_BROWSER_SHOT');
const nFixture = Number(env('FW_BROWSER_N_FIXTURE'));
const n100k = Number(env('FW_BROWSER_N_100K'));
const n1m = Number(env('FW_BROWSER_N_1M'));
const allow = env('FW_BROWSER_ALLOW').split(',');   // the server's --allow list
const readRows = (file) => readFileSync(file, 'utf8')
  .split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
const fixtureRows = readRows(env('FW_BROWSER_FIXTURE_ROWS'));
const filteredRows = readRows(env('FW_BROWSER_FILTERED_ROWS'));
const require = createRequire(env('FW_BROWSER_PW') + '/');
const { chromium } = require(env('FW_BROWSER_PW'));

let n = 0;
let failed = 0;
function ok(cond, what, detail) {
  n++;
  if (cond) {
    console.log(`ok ${n} - ${what}`);
  } else {
    failed++;
    console.log(`not ok ${n} - ${what}` + (detail !== undefined ? `\n  # ${detail}` : ''));
  }
  return cond;
}
const info = (s) => console.log(`# ${s}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A whole-run watchdog: a hung step still leaves a screenshot and a clear message.
let page = null;
const watchdog = setTimeout(async () => {
  console.log('not ok - the page test took longer than 600 s');
  try {
    if (page) await page.screenshot({ path: shot, fullPage: true });
  } catch (e) { /* exiting anyway */ }
  process.exit(1);
}, 600_000);

const browser = await chromium.launch({
  executablePath: env('FW_CHROMIUM'),
  args: ['--no-sandbox'],
});
const pageErrors = [];
try {
  // over https the gateway's certificate is a throwaway one made by check-browser.sh
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 },
    ignoreHTTPSErrors: base.startsWith('https:') });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.setDefaultTimeout(30_000);
  await run(page);
} catch (e) {
  const where = e && e.stack ? e.stack.split('\n').slice(0, 6).join('\n  # ') : String(e);
  ok(false, 'the test ran to its end', where);
} finally {
  try {
    if (page) {
      await page.evaluate(() => window.scrollTo(0, 0)).catch(() => {});
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`# screenshot: ${shot}`);
    }
  } catch (e) {
    ok(false, 'screenshot saved', e.message);
  }
  await browser.close();
  clearTimeout(watchdog);
}
ok(pageErrors.length === 0, 'no uncaught errors in the page', pageErrors.join(' | '));
console.log(failed ? `# ${failed} of ${n} checks failed` : `# all ${n} checks passed`);
process.exit(failed ? 1 : 0);

// ---- helpers ---------------------------------------------------------------------------------

function tid(id, t) {
  return `#${id} [data-testid="${t}"]`;
}
async function cardState(page, id) {
  return page.locator(`#${id}`).getAttribute('data-state');
}
async function count(page, id) {
  return Number(await page.locator(tid(id, 'rows-count')).getAttribute('data-value'));
}
async function text(page, id, t) {
  return (await page.locator(tid(id, t)).textContent()).trim();
}
// Waits for `selector` to match; false (not an exception) on timeout.
async function appears(page, selector, timeout) {
  try {
    await page.locator(selector).waitFor({ timeout });
    return true;
  } catch (e) {
    return false;
  }
}
async function connState(page) {
  return page.locator('#conn-status').getAttribute('data-state');
}
// Waits for the error banner's text to match `re`; returns the text either way.
async function bannerSays(page, re, timeout) {
  try {
    await page.waitForFunction(
      (src) => new RegExp(src, 'i').test(document.getElementById('global-error-text').textContent),
      re.source, { timeout });
  } catch (e) { /* the caller checks the text */ }
  return page.locator('#global-error-text').textContent();
}
async function waitFinal(page, id, timeout) {
  try {
    await page.waitForFunction(([sel, fin]) => {
      const el = document.querySelector(sel);
      return el && fin.includes(el.dataset.state);
    }, [`#${id}`, FINAL], { timeout, polling: 100 });
  } catch (e) {
    info(`card ${id} not final after ${timeout} ms`);
  }
  return cardState(page, id);
}
async function waitState(page, id, state, timeout) {
  if (await appears(page, `#${id}[data-state="${state}"]`, timeout)) return true;
  info(`card ${id} is ${await cardState(page, id)}, not ${state}, after ${timeout} ms`);
  return false;
}
// Waits until the card's row counter passes `k`; false on timeout.
async function countAbove(page, id, k, timeout) {
  try {
    await page.waitForFunction(([sel, k]) => Number(document.querySelector(sel).dataset.value) > k,
      [tid(id, 'rows-count'), k], { timeout });
    return true;
  } catch (e) {
    return false;
  }
}
// The rows box: "  NNN  {json}" lines.
async function shownRows(page, id) {
  const t = await page.locator(tid(id, 'rows')).textContent();
  if (t === '') return [];
  return t.split('\n').map((line) => {
    const m = /^\s*(\d+) {2}(.*)$/.exec(line);
    return m ? { n: Number(m[1]), json: m[2] } : { n: NaN, json: line };
  });
}

// True when the rows box shows exactly `want` (parsed JSON values), numbered from 1.
async function showsRows(page, id, want) {
  const rows = await shownRows(page, id);
  if (rows.length !== want.length) return false;
  for (let i = 0; i < rows.length; i++) {
    let v;
    try {
      v = JSON.parse(rows[i].json);
    } catch (e) {
      return false;
    }
    if (rows[i].n !== i + 1 || !isDeepStrictEqual(v, want[i])) return false;
  }
  return true;
}

// Fills the form through its labels and returns the new card's id.
/*
 * Records, inside the page, a snapshot of every running stream card at each change of the
 * stream list (a MutationObserver), so that a stream that ends between two polls of this test
 * is still seen batch by batch. takeWatch stops it and returns the snapshots of one card.
 */
async function watchCards(page) {
  await page.evaluate(() => {
    window.__snaps = [];
    const root = document.getElementById('streams');
    const snap = (el) => {
      const bar = el.querySelector('[data-testid="progress"]');
      return {
        id: el.id,
        state: el.dataset.state,
        count: Number(el.querySelector('[data-testid="rows-count"]').dataset.value),
        rate: el.querySelector('[data-testid="rate"]').textContent,
        estimated: el.querySelector('[data-testid="estimated"]').textContent,
        percent: el.querySelector('[data-testid="percent"]').textContent,
        pct: bar.dataset.percent,
        passed: bar.dataset.estimatePassed,
        indeterminate: bar.classList.contains('indeterminate'),
      };
    };
    window.__watch = new MutationObserver(() => {
      for (const el of root.querySelectorAll('[data-testid="stream-card"]'))
        if (el.dataset.state === 'running') window.__snaps.push(snap(el));
    });
    window.__watch.observe(root, { subtree: true, childList: true, characterData: true,
                                   attributes: true });
  });
}

async function takeWatch(page, id) {
  const all = await page.evaluate(() => {
    window.__watch.disconnect();
    return window.__snaps;
  });
  return all.filter((o) => o.id === id);
}

async function startStream(page, entity, { limit = '', batch = '' } = {}) {
  if ((await connState(page)) !== 'open') {
    const why = await page.locator('#global-error-text').textContent();
    throw new Error(`the socket is ${await connState(page)} (did the server die?): ${why}`);
  }
  await page.getByLabel(/^Entity\b/).fill(entity);
  await page.getByLabel(/^Limit\b/).fill(limit);
  await page.getByLabel(/^Batch size\b/).fill(batch);
  const cards = '#streams > [data-testid="stream-card"]';
  const before = await page.locator(cards).count();
  await page.getByRole('button', { name: 'Start stream' }).click();
  await page.waitForFunction(([sel, k]) => document.querySelectorAll(sel).length > k,
    [cards, before]);
  const id = await page.locator(cards).first().getAttribute('id');
  info(`started ${entity}${limit ? ' limit ' + limit : ''}${batch ? ' batch ' + batch : ''}` +
       ` as card ${id}`);
  return id;
}

async function checkCompleted(page, id, expect, what) {
  const state = await cardState(page, id);
  let why = `state ${state}`;
  if (await page.locator(tid(id, 'error')).isVisible()) {
    why += '; ' + (await page.locator(tid(id, 'error')).textContent()).replace(/\s+/g, ' ').trim();
  }
  if (await page.locator('#global-error').isVisible()) {
    why += '; banner: ' + await page.locator('#global-error-text').textContent();
  }
  ok(state === 'completed', `${what}: the card is completed`, why);
  const got = await count(page, id);
  ok(got === expect, `${what}: rows counter ${got} equals psql's count ${expect}`);
  const shown = await text(page, id, 'rows-count');
  ok(shown.replace(/,/g, '') === String(expect), `${what}: the counter reads ${shown}`);
  const pct = await page.locator(tid(id, 'progress')).getAttribute('data-percent');
  const pctText = await text(page, id, 'percent');
  ok(pct === '100.0' && pctText === '100 %', `${what}: progress shows 100 %`,
     `data-percent ${pct}, text ${pctText}`);
  const total = await page.locator(tid(id, 'summary')).getAttribute('data-total-rows');
  ok(Number(total) === expect, `${what}: query_completed total_rows ${total} equals ${expect}`);
  ok(await page.locator(tid(id, 'summary')).isVisible(), `${what}: the summary line is shown`,
     await text(page, id, 'summary'));
}

// ---- the checks ------------------------------------------------------------------------------

async function run(page) {
  // 1. Without the token, or with a wrong one, the socket does not open and the page says why.
  if (token !== '') {
    await page.goto(base + '/');
    ok(await appears(page, '#conn-status[data-state="closed"]', 15_000),
       'without ?token= the page shows the socket closed', `conn-status ${await connState(page)}`);
    ok(await page.locator('#global-error').isVisible(), 'without ?token= an error banner is shown');
    let why = await bannerSays(page, /needs an access token/, 10_000);
    ok(/needs an access token/i.test(why), 'without ?token= the banner says a token is needed',
       why);
    ok(await page.locator('#start').isDisabled(), 'without a socket Start is disabled');
    ok(await page.locator('#reconnect').isVisible(), 'without a socket Reconnect is offered');

    await page.goto(base + '/?token=' + encodeURIComponent(token + 'x'));
    why = await bannerSays(page, /refused the access token/, 15_000);
    ok(/refused the access token/i.test(why) && (await connState(page)) === 'closed',
       'with a wrong token the banner says the token was refused', why);
  }

  // 2. With it the page connects; its CSS and script came from the gateway.
  await page.goto(base + '/' + (token !== '' ? '?token=' + encodeURIComponent(token) : ''));
  ok(await page.title() !== '', 'the page has a title', await page.title());
  const open = await appears(page, '#conn-status[data-state="open"]', 15_000);
  ok(open, 'the page connects to /ws',
     `conn-status ${await connState(page)}: ${await page.locator('#conn-status').textContent()}`);
  if (!open) throw new Error('no WebSocket connection: nothing more to test');
  const display = await page.locator('.topbar').evaluate((el) => getComputedStyle(el).display);
  ok(display === 'flex', '/style.css is applied', `.topbar display ${display}`);
  ok(await page.locator('#global-error').isHidden(), 'no error banner once connected');

  // The entity suggestions are the server's --allow list (GET /entities), nothing hard-coded.
  const loaded = await page.waitForFunction(
    () => document.getElementById('entity-list').dataset.loaded === 'true', null,
    { timeout: 10_000 }).then(() => true, () => false);   // a datalist is never "visible"
  ok(loaded, 'the entity suggestions were loaded from the server');
  const suggested = await page.locator('#entity-list option').evaluateAll(
    (os) => os.map((o) => o.value));
  ok(isDeepStrictEqual(suggested, allow), 'the entity suggestions are the --allow list, in order',
     `${JSON.stringify(suggested)} against ${JSON.stringify(allow)}`);
  const firstValue = await page.getByLabel(/^Entity\b/).inputValue();
  ok(firstValue === allow[0], 'the entity field starts with the first allowed entity',
     `"${firstValue}"`);

  // 3. fixture to 100 %: the counter is psql's count and the rows shown are psql's rows.
  const fx = await startStream(page, 'fixture');
  await waitFinal(page, fx, 60_000);
  await checkCompleted(page, fx, nFixture, 'fixture');
  ok(await showsRows(page, fx, fixtureRows),
     `fixture: the ${fixtureRows.length} rows shown are psql's, in order`,
     JSON.stringify(await shownRows(page, fx)).slice(0, 400));

  // The "Filter and order" fields: where, order by (descending), with a limit.
  await page.getByText('Filter and order').click();
  await page.getByLabel(/^Where\b/).fill('[{"path":"id","op":"lt","value":100}]');
  await page.getByLabel(/^Order by\b/).fill('id');
  await page.getByLabel('Descending').check();
  const fl = await startStream(page, 'bench_100k', { limit: '30' });
  await waitFinal(page, fl, 60_000);
  await checkCompleted(page, fl, filteredRows.length, 'bench_100k where id < 100 desc limit 30');
  ok(await showsRows(page, fl, filteredRows),
     'bench_100k where id < 100 desc limit 30: the rows shown are psql\'s, in order',
     JSON.stringify(await shownRows(page, fl)).slice(0, 400));
  await page.getByLabel(/^Where\b/).fill('[{"path":"id"');
  await page.getByRole('button', { name: 'Start stream' }).click();
  const formError = await page.locator('#form-error').textContent();
  ok(await page.locator('#form-error').isVisible() && /JSON array/.test(formError),
     'a where that is not a JSON array is refused by the form', formError);
  await page.getByLabel(/^Where\b/).fill('');

  // The same query through the small form (path, operator, value) instead of the JSON box.
  const cond = page.locator('[data-testid="condition"]').first();
  await cond.getByLabel('Path').fill('id');
  await cond.getByLabel('Operator').selectOption('lt');
  await cond.getByLabel('Value').fill('100');
  const ff = await startStream(page, 'bench_100k', { limit: '30' });
  await waitFinal(page, ff, 60_000);
  await checkCompleted(page, ff, filteredRows.length, 'the form: bench_100k id < 100 desc limit 30');
  ok(await showsRows(page, ff, filteredRows),
     'the form: the rows shown are psql\'s for id < 100 desc limit 30, in order',
     JSON.stringify(await shownRows(page, ff)).slice(0, 400));
  const sentParams = await text(page, ff, 'params');
  info(`the form's query as the card shows it: ${sentParams}`);
  // a second condition line, then one with a path but no value: refused by the form
  await page.getByRole('button', { name: 'Add condition' }).click();
  ok(await page.locator('[data-testid="condition"]').count() === 2,
     'Add condition adds a line to the form');
  const second = page.locator('[data-testid="condition"]').nth(1);
  await second.getByLabel('Path').fill('name');
  await page.getByRole('button', { name: 'Start stream' }).click();
  const condError = await page.locator('#form-error').textContent();
  ok(await page.locator('#form-error').isVisible() && /needs a value/.test(condError),
     'a condition without a value is refused by the form', condError);
  // is null takes no value: the value box is disabled
  await second.getByLabel('Operator').selectOption('is_null');
  ok(await second.getByLabel('Value').isDisabled(), 'is null disables the value box');
  await second.getByRole('button', { name: 'Remove this condition' }).click();
  await cond.getByRole('button', { name: 'Remove this condition' }).click();
  const left = page.locator('[data-testid="condition"]');
  ok(await left.count() === 1 && (await left.first().getByLabel('Path').inputValue()) === '',
     'removing every condition leaves one empty line');
  await page.getByLabel(/^Order by\b/).fill('');
  await page.getByLabel('Descending').uncheck();

  // 4. bench_100k to 100 %, watching the progress bar and the size of the rows box on the way.
  // The cards are watched from inside the page (watchCards), so a stream that ends between two
  // polls of this test (a quiet machine streams 100k rows in well under 50 ms) is still seen
  // from its first batch.
  await watchCards(page);
  const b1 = await startStream(page, 'bench_100k', { batch: '1000' });
  const seen = new Set();
  let maxLines = 0;
  const t0 = Date.now();
  for (;;) {
    const s = await page.evaluate((id) => {
      const el = document.getElementById(id);
      const box = el.querySelector('[data-testid="rows"]');
      return {
        state: el.dataset.state,
        pct: el.querySelector('[data-testid="progress"]').dataset.percent,
        lines: box.textContent === '' ? 0 : box.textContent.split('\n').length,
        count: Number(el.querySelector('[data-testid="rows-count"]').dataset.value),
      };
    }, b1);
    if (s.pct !== undefined) seen.add(s.pct);
    maxLines = Math.max(maxLines, s.lines);
    if (FINAL.includes(s.state) || Date.now() - t0 > 240_000) break;
    await sleep(50);
  }
  const took = ((Date.now() - t0) / 1000).toFixed(1);
  info(`bench_100k took ${took} s in the page; progress values seen: ` +
       [...seen].slice(0, 12).join(', ') + (seen.size > 12 ? ', ...' : ''));
  await checkCompleted(page, b1, n100k, 'bench_100k');
  ok(maxLines > 0 && maxLines <= KEEP_ROWS,
     `bench_100k: the rows box never held more than ${KEEP_ROWS} rows`, `max ${maxLines}`);
  const rates = (await takeWatch(page, b1)).filter((o) => o.count > 0).map((o) => o.rate);
  const deadRates = rates.filter((r) => !(Number(r.replace(/,/g, '')) > 0));
  ok(rates.length > 0 && deadRates.length === 0,
     'bench_100k: Rows/s is a live figure above 0 from the first batch on',
     `${rates.length} samples, not live: ${JSON.stringify(deadRates.slice(0, 5))}`);
  const last = await shownRows(page, b1);
  const lastNo = last.length ? last[last.length - 1].n : '-';
  ok(last.length === Math.min(KEEP_ROWS, n100k) && lastNo === n100k,
     `bench_100k: the box ends with row ${n100k}`, `lines ${last.length}, last #${lastNo}`);

  // 4b. An estimate that is passed: for id >= 0 the planner guesses a third of bench_100k. The
  // estimate is shown as one (~); under it the percentage is marked ~ too; past it the bar is
  // indeterminate (no data-percent) and says so, never a "100 %" before the end.
  await page.locator('#more-options').evaluate((d) => { d.open = true; });
  await page.getByLabel(/^Where\b/).fill('[{"path":"id","op":"ge","value":0}]');
  await watchCards(page);
  const ep = await startStream(page, 'bench_100k', { batch: '500' });
  await page.getByLabel(/^Where\b/).fill('');
  await waitFinal(page, ep, 120_000);
  const obs = await takeWatch(page, ep);
  await checkCompleted(page, ep, n100k, 'bench_100k id >= 0');
  const running = obs.filter((o) => o.state === 'running' && o.count > 0);
  const estNum = (o) => Number(o.estimated.replace(/[~,]|\s.*$/g, ''));
  const withEst = running.filter((o) => /^~[\d,]+/.test(o.estimated));
  ok(withEst.length > 0 && withEst.length === running.length,
     'id >= 0: the estimate is shown as an estimate (~N)', JSON.stringify(running[0]));
  const est = withEst.length ? estNum(withEst[0]) : NaN;
  info(`id >= 0: the planner estimated ${est} rows of ${n100k}; ${running.length} samples`);
  ok(est > 0 && est < n100k, 'id >= 0: the planner underestimates (the case under test)', `${est}`);
  const under = running.filter((o) => o.count <= est);
  const over = running.filter((o) => o.count > est);
  ok(under.every((o) => o.pct !== undefined && /^~/.test(o.percent) && o.passed !== 'true'),
     'under the estimate: a percentage marked ~', JSON.stringify(under.slice(-1)));
  ok(over.length > 0, 'samples were taken past the estimate', `${over.length}`);
  ok(over.every((o) => o.pct === undefined && o.indeterminate && o.passed === 'true' &&
                       /past the estimate/.test(o.percent) && /\(passed\)/.test(o.estimated)),
     'past the estimate: an indeterminate bar that says the estimate was passed',
     JSON.stringify(over.find((o) => !(o.pct === undefined && o.indeterminate)) || over[0]));
  ok(!running.some((o) => o.percent === '100 %'), 'no 100 % before the stream completed');

  // 5. Errors: a SQL error mid-stream (22012 after three rows), and an entity not allowed.
  const em = await startStream(page, 'fixture_error_mid');
  const emState = await waitFinal(page, em, 60_000);
  ok(emState === 'error', 'fixture_error_mid: the card shows an error', `state ${emState}`);
  ok(await page.locator(tid(em, 'error')).isVisible(), 'fixture_error_mid: the error box is shown');
  const emCode = await text(page, em, 'error-code');
  const emSqlstate = await text(page, em, 'error-sqlstate');
  const emMsg = await text(page, em, 'error-message');
  ok(emCode !== '', 'fixture_error_mid: an error code is shown', emCode);
  ok(emSqlstate === '22012', 'fixture_error_mid: SQLSTATE 22012 is shown', `"${emSqlstate}"`);
  ok(emMsg !== '', 'fixture_error_mid: the message is shown', emMsg);
  const emRows = await count(page, em);
  info(`fixture_error_mid: ${emCode} [${emSqlstate}] ${emMsg}; rows before it: ${emRows}`);
  ok(emRows <= 3, 'fixture_error_mid: no more than the 3 rows before the error', `${emRows}`);

  const na = await startStream(page, 'no_such_entity_allowed');
  const naState = await waitFinal(page, na, 30_000);
  ok(naState === 'error', 'an entity outside --allow: the card shows an error', `state ${naState}`);
  const naCode = await text(page, na, 'error-code');
  const naMsg = await text(page, na, 'error-message');
  ok(naCode !== '' && naMsg !== '', 'an entity outside --allow: code and message are shown',
     `${naCode}: ${naMsg}`);
  info(`entity outside --allow: ${naCode}: ${naMsg}`);

  // 6. bench_1m: pause (the counter stops), a second stream completes meanwhile, resume, cancel.
  const big = await startStream(page, 'bench_1m', { batch: '500' });
  ok(await waitState(page, big, 'running', 30_000), 'bench_1m: the stream starts');
  ok(await countAbove(page, big, 0, 30_000), 'bench_1m: rows arrive');
  await page.locator(tid(big, 'pause')).click();
  const paused = await waitState(page, big, 'paused', 15_000);
  ok(paused, 'bench_1m: Pause makes the card paused');
  ok((await text(page, big, 'pause')) === 'Resume', 'bench_1m: the pause button now says Resume');
  await sleep(1000);   // batches already on their way may still land (docs/gateway.md)
  const c1 = await count(page, big);
  await sleep(1500);
  const c2 = await count(page, big);
  ok(paused && c1 === c2 && c2 < n1m, 'bench_1m: while paused the counter stops', `${c1}, ${c2}`);

  const sideLimit = Math.min(20000, n100k);
  const side = await startStream(page, 'bench_100k', { limit: String(sideLimit), batch: '2000' });
  await waitFinal(page, side, 120_000);
  await checkCompleted(page, side, sideLimit, `bench_100k limit ${sideLimit} beside a paused one`);
  ok((await count(page, big)) === c2, 'bench_1m: still paused after the other stream completed');

  await page.locator(tid(big, 'pause')).click();
  ok(await waitState(page, big, 'running', 15_000), 'bench_1m: Resume makes the card stream again');
  ok(await countAbove(page, big, c2, 15_000), 'bench_1m: rows arrive again after Resume');

  await page.locator(tid(big, 'cancel')).click();
  const bigState = await waitFinal(page, big, 30_000);
  ok(bigState === 'cancelled', 'bench_1m: Cancel ends in the cancelled state', `state ${bigState}`);
  const bigBadge = await text(page, big, 'state');
  ok(/cancelled/i.test(bigBadge), 'bench_1m: the card says Cancelled', bigBadge);
  const cBig = await count(page, big);
  ok(cBig > 0 && cBig < n1m, `bench_1m: cancelled part way (${cBig} of ${n1m} rows)`);
  ok(await page.locator(tid(big, 'cancel')).isHidden() &&
     await page.locator(tid(big, 'close')).isVisible(),
     'bench_1m: Cancel is gone and Remove is offered');
  await sleep(1000);
  ok((await count(page, big)) === cBig, 'bench_1m: no rows after the cancel');
  const lines = (await shownRows(page, big)).length;
  ok(lines <= KEEP_ROWS, `bench_1m: the rows box holds at most ${KEEP_ROWS} rows`, `${lines}`);

  // 7. The socket closes: the page says so and Reconnect brings it back.
  await page.evaluate(() => window.fwirePage.socket().close());
  const closed = await appears(page, '#conn-status[data-state="closed"]', 10_000);
  ok(closed && await page.locator('#reconnect').isVisible(),
     'a closed socket shows Disconnected and a Reconnect button');
  await page.getByRole('button', { name: 'Reconnect' }).click();
  const reopened = await appears(page, '#conn-status[data-state="open"]', 15_000);
  ok(reopened, 'Reconnect opens the socket again');
  if (reopened) {
    const again = await startStream(page, 'fixture', { limit: '3' });
    await waitFinal(page, again, 60_000);
    await checkCompleted(page, again, Math.min(3, nFixture), 'fixture limit 3 after reconnecting');
  }
  ok((await cardState(page, big)) === 'cancelled' && (await cardState(page, fx)) === 'completed',
     'finished cards keep their state across the reconnect');
}
