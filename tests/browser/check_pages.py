#!/usr/bin/env python3
"""Opens attnviz HTML pages in headless Chromium and reports what they do, as JSON on stdout.

Drives Chromium over the DevTools protocol on --remote-debugging-pipe (fds 3 and 4, NUL-separated
JSON messages), so it needs nothing beyond Python's standard library and Debian's `chromium`.
For each page: console errors and uncaught exceptions, every network request, the DOM counts of the
view named after the page (head, model, matrix, text, image), the effect of real mouse events
(hover, click, wheel, drag), a save, the load time, and whether a screenshot is blank.

Usage: check_pages.py --chromium PATH --out DIR KIND=PAGE.html [KIND=PAGE.html ...]
Exit codes: 0 report written (the caller judges it), 77 Chromium is absent or cannot start
(the caller reports SKIP), 2 bad usage or a protocol failure.
"""
import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

SKIP = 77


class BrowserError(Exception):
    pass


class Browser:
    """One Chromium process, spoken to over the DevTools pipe."""

    def __init__(self, exe, profile, timeout=20.0):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def wire():  # in the child, before exec: the pipe ends become fds 3 (read) and 4 (write)
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [exe, '--headless=new', '--remote-debugging-pipe', '--no-sandbox', '--disable-gpu',
                '--user-data-dir=' + profile, '--no-first-run', '--no-default-browser-check',
                '--disable-extensions', '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--disable-default-apps', '--mute-audio', '--hide-scrollbars',
                '--window-size=1280,900', '--force-device-scale-factor=1', 'about:blank']
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=wire, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b''
        self.next_id = 0
        self.events = []
        self.timeout = timeout

    def close(self):
        try:
            self.send('Browser.close', timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read_message(self, deadline):
        while b'\0' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError('no answer from Chromium within the time limit')
            ready, _, _ = select.select([self.from_child], [], [], left)
            if not ready:
                continue
            data = os.read(self.from_child, 1 << 20)
            if not data:
                err = self.proc.stderr.read().decode(errors='replace') if self.proc.poll() is not None else ''
                raise BrowserError('Chromium closed the DevTools pipe' + (': ' + err.strip()[-400:] if err else ''))
            self.buf += data
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=None):
        self.next_id += 1
        msg = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session:
            msg['sessionId'] = session
        os.write(self.to_child, json.dumps(msg).encode() + b'\0')
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._read_message(deadline)
            if m.get('id') == self.next_id:
                if 'error' in m:
                    raise BrowserError(method + ': ' + json.dumps(m['error']))
                return m.get('result', {})
            if 'method' in m:
                self.events.append(m)

    def pump(self, seconds):
        """Collects events for a while (after an action, so late errors or requests are seen)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                m = self._read_message(deadline)
                if 'method' in m:
                    self.events.append(m)
        except BrowserError:
            pass


class Page:
    def __init__(self, browser):
        self.b = browser
        target = browser.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        self.target = target
        self.s = browser.send('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        for domain in ('Runtime', 'Log', 'Network', 'Page'):
            self.cmd(domain + '.enable')
        self.cmd('Emulation.setDeviceMetricsOverride', {'width': 1280, 'height': 900, 'deviceScaleFactor': 1, 'mobile': False})

    def cmd(self, method, params=None, timeout=None):
        return self.b.send(method, params, self.s, timeout)

    def eval(self, expr, timeout=30):
        r = self.cmd('Runtime.evaluate', {'expression': expr, 'awaitPromise': True, 'returnByValue': True}, timeout)
        if 'exceptionDetails' in r:
            raise BrowserError('page script failed: ' + json.dumps(r['exceptionDetails'])[:600] + ' in: ' + expr[:200])
        return r['result'].get('value')

    def wait_for(self, expr, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.03)
        raise BrowserError('timed out waiting for ' + expr)

    def mouse(self, kind, x, y, **extra):
        p = {'type': kind, 'x': x, 'y': y}
        p.update(extra)
        self.cmd('Input.dispatchMouseEvent', p)

    def center(self, selector):
        r = self.eval('(() => { const e = document.querySelector(%s); if (!e) return null; e.scrollIntoView({block: "center"});'
                      ' const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()'
                      % json.dumps(selector))
        if r is None:
            raise BrowserError('no element ' + selector)
        return r

    def hover(self, selector):
        x, y = self.center(selector)
        self.mouse('mouseMoved', x, y)
        return x, y

    def click(self, selector):
        x, y = self.center(selector)
        self.mouse('mouseMoved', x, y)
        self.mouse('mousePressed', x, y, button='left', clickCount=1)
        self.mouse('mouseReleased', x, y, button='left', clickCount=1)

    def frame(self):  # lets the page draw what an event requested
        self.eval('new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))')

    def screenshot(self, path):
        data = base64.b64decode(self.cmd('Page.captureScreenshot', {'format': 'png'}, timeout=60)['data'])
        with open(path, 'wb') as f:
            f.write(data)
        return png_colours(data)

    def close(self):
        self.b.send('Target.closeTarget', {'targetId': self.target})


def png_colours(data):
    """Distinct colours of an 8-bit RGB/RGBA PNG (Chromium's screenshots), sampled every 3rd pixel."""
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise BrowserError('screenshot is not a PNG')
    pos, idat, w, h, ctype = 8, b'', 0, 0, 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], 'big')
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h = int.from_bytes(body[0:4], 'big'), int.from_bytes(body[4:8], 'big')
            if body[8] != 8 or body[9] not in (2, 6) or body[12] != 0:
                raise BrowserError('unexpected PNG layout (depth %d, colour type %d)' % (body[8], body[9]))
            ctype = body[9]
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 3 == 0:
            for x in range(0, w, 3):
                colours.add(bytes(line[x * bpp:x * bpp + 3]))
        prev = line
    return len(colours)


# JS snippets ------------------------------------------------------------------------------------------
NONWHITE = '''(sel => { const c = document.querySelector(sel); if (!c) return -1;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245) ++n; return n; })'''
LINES = '''(() => { const ls = [...document.querySelectorAll('#head-lines line')];
  return {n: ls.length, q: [...new Set(ls.map(l => +l.dataset.q))], k: [...new Set(ls.map(l => +l.dataset.k))],
          h: [...new Set(ls.map(l => +l.dataset.h))]}; })()'''


def scenario_head(p, r):
    p.eval("attnviz.show('head')")
    r['tokens_q'] = p.eval("document.querySelectorAll('#head-svg text.tok-q').length")
    r['tokens_k'] = p.eval("document.querySelectorAll('#head-svg text.tok-k').length")
    r['head_boxes'] = p.eval("document.querySelectorAll('#view-head input[type=checkbox]').length")
    r['lines_all'] = p.eval(LINES)
    q = min(1, r['tokens_q'] - 1)
    p.hover('#head-svg text.tok-q[data-i="%d"]' % q)
    p.frame()
    r['hover_query'] = q
    r['lines_hover'] = p.eval(LINES)
    r['readout_hover'] = p.eval("document.querySelector('#view-head .readout').textContent")
    p.mouse('mouseMoved', 5, 5)
    p.frame()
    r['lines_after'] = p.eval(LINES)['n']
    p.click('#view-head input[data-head="0"]')  # untick head 0: its lines go
    r['lines_without_h0'] = p.eval(LINES)
    p.eval("attnviz.save('svg')")
    r['save_svg'] = p.eval('attnviz.lastSave')
    p.eval("attnviz.save('png')")
    r['save_png'] = p.eval('attnviz.lastSave')


def scenario_model(p, r):
    p.eval("attnviz.show('model')")
    r['thumbs'] = p.eval("document.querySelectorAll('#view-model canvas.thumb').length")
    r['thumbs_missing'] = p.eval("document.querySelectorAll('#view-model canvas.thumb.missing').length")
    r['rows'] = p.eval("document.querySelectorAll('#view-model .rowlabel').length")
    r['thumb_nonwhite'] = p.eval(NONWHITE + "('#view-model canvas.thumb')")
    last = p.eval("(() => { const t = [...document.querySelectorAll('#view-model canvas.thumb:not(.missing)')]; "
                  "const e = t[t.length - 1]; return e ? [+e.dataset.tensor, +e.dataset.head] : null; })()")
    if last:
        p.click('#view-model canvas.thumb[data-tensor="%d"][data-head="%d"]' % tuple(last))
        p.wait_for("attnviz.views.model.matrix.ti === %d && attnviz.views.model.matrix.h === %d && "
                   "!!attnviz.views.model.matrix.data" % tuple(last))
        p.frame()
        r['opened'] = p.eval("[attnviz.views.model.matrix.ti, attnviz.views.model.matrix.h]")
        x, y = p.center('#view-model canvas.plot')
        p.mouse('mouseMoved', x + 20, y + 20)
        p.frame()
        r['readout_hover'] = p.eval("document.querySelector('#view-model .readout').textContent")
        r['hover_cell'] = p.eval("attnviz.views.model.matrix.hover")
        r['matrix_nonwhite'] = p.eval(NONWHITE + "('#view-model canvas.plot')")
        # Away to another tab and back: the large matrix is drawn again.
        p.eval("attnviz.show('head').then(() => attnviz.show('model'))")
        p.frame()
        r['matrix_nonwhite_again'] = p.eval(NONWHITE + "('#view-model canvas.plot')")
    p.eval("attnviz.save('png')")
    r['save_png'] = p.eval('attnviz.lastSave')


def scenario_matrix(p, r):
    p.eval("attnviz.show('matrix')")
    r['size'] = p.eval("[attnviz.views.matrix.matrix.t.queries, attnviz.views.matrix.matrix.t.keys]")
    r['matrix_nonwhite'] = p.eval(NONWHITE + "('#view-matrix canvas.plot')")
    x, y = p.center('#view-matrix canvas.plot')
    r['scale_before'] = p.eval('attnviz.views.matrix.matrix.s')
    # Wheel-zoom at the centre, then drag-pan: each step waits for its frame; the frame times are the
    # smoothness measure (the page draws once per animation frame).
    times = []
    for i in range(12):
        t0 = time.monotonic()
        p.mouse('mouseWheel', x, y, deltaX=0, deltaY=-400)
        p.frame()
        times.append(time.monotonic() - t0)
    r['scale_after_zoom'] = p.eval('attnviz.views.matrix.matrix.s')
    r['labels_when_zoomed'] = p.eval("attnviz.views.matrix.matrix.s >= 8")
    p.mouse('mousePressed', x, y, button='left', clickCount=1)
    for i in range(12):
        t0 = time.monotonic()
        p.mouse('mouseMoved', x - 10 * (i + 1), y - 8 * (i + 1), button='left', buttons=1)
        p.frame()
        times.append(time.monotonic() - t0)
    p.mouse('mouseReleased', x - 120, y - 96, button='left', clickCount=1)
    r['offset_after_pan'] = p.eval("[attnviz.views.matrix.matrix.ox, attnviz.views.matrix.matrix.oy]")
    draws = p.eval('attnviz.timing.draws')
    r['draws'] = len(draws)
    r['draw_ms_max'] = round(max(draws), 2)
    r['draw_ms_median'] = round(sorted(draws)[len(draws) // 2], 2)
    r['frame_ms_max'] = round(1000 * max(times), 1)
    r['frame_ms_median'] = round(1000 * sorted(times)[len(times) // 2], 1)
    p.mouse('mouseMoved', x, y)
    p.frame()
    r['readout_hover'] = p.eval("document.querySelector('#view-matrix .readout').textContent")
    p.mouse('mouseMoved', x + 90, y + 170)  # more than one cell away at the largest zoom (80 px)
    p.frame()
    r['readout_hover2'] = p.eval("document.querySelector('#view-matrix .readout').textContent")


def scenario_text(p, r):
    p.eval("attnviz.show('text')")
    r['tokens'] = p.eval("document.querySelectorAll('#text-body .tok').length")
    r['weights'] = p.eval("[...document.querySelectorAll('#text-body .tok')].map(e => +e.dataset.w)")
    p.hover('#text-body .tok[data-i="1"]')
    r['readout_hover'] = p.eval("document.querySelector('#view-text .readout').textContent")
    p.eval("attnviz.save('svg')")
    r['save_svg'] = p.eval('attnviz.lastSave')


def scenario_image(p, r):
    p.eval("attnviz.show('image')")
    r['methods'] = p.eval("[...document.querySelectorAll('#view-image select')[0].options].map(o => o.value)")
    r['canvas_nonwhite'] = p.eval(NONWHITE + "('#image-canvas')")
    sig = "(() => { const c = document.querySelector('#image-canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + 2 * d[i + 1] + 3 * d[i + 2]; return s; })()"
    r['sum_before'] = p.eval(sig)
    p.eval("(() => { const a = document.querySelector('#image-alpha'); a.value = 0.1; a.dispatchEvent(new Event('input')); })()")
    p.wait_for("attnviz.views.image.state.alpha === 0.1")
    p.eval("new Promise(r => setTimeout(r, 100))")
    r['sum_after_alpha'] = p.eval(sig)
    p.hover('#image-canvas')
    r['readout_hover'] = p.eval("document.querySelector('#view-image .readout').textContent")
    p.eval("attnviz.save('png')")
    r['save_png'] = p.eval('attnviz.lastSave')


SCENARIOS = {'head': scenario_head, 'model': scenario_model, 'matrix': scenario_matrix,
             'text': scenario_text, 'image': scenario_image}


def check_page(b, kind, path, shot):
    r = {'kind': kind, 'page': path, 'bytes': os.path.getsize(path)}
    url = 'file://' + os.path.abspath(path)
    b.events.clear()
    p = Page(b)
    t0 = time.monotonic()
    p.cmd('Page.navigate', {'url': url + '#' + kind})
    state = p.wait_for("document.body && document.body.dataset.ready", timeout=60)
    r['load_s'] = round(time.monotonic() - t0, 3)
    r['ready'] = state
    r['page_ms'] = p.eval("Math.round(attnviz.timing[%s] || -1)" % json.dumps(kind))
    r['views'] = p.eval('attnviz.kinds')
    r['left_out_banner'] = p.eval("(document.querySelector('#left-out') || {}).textContent || ''")
    if state == '1':
        SCENARIOS[kind](p, r)
    r['screenshot_colours'] = p.screenshot(shot)
    r['screenshot'] = shot
    b.pump(0.2)
    errors, requests = [], []
    for e in b.events:
        m, prm = e['method'], e.get('params', {})
        if m == 'Runtime.exceptionThrown':
            errors.append('exception: ' + prm['exceptionDetails'].get('exception', {}).get('description', prm['exceptionDetails'].get('text', '')))
        elif m == 'Runtime.consoleAPICalled' and prm.get('type') in ('error', 'assert'):
            errors.append('console.' + prm['type'] + ': ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in prm.get('args', [])))
        elif m == 'Log.entryAdded' and prm['entry'].get('level') == 'error':
            errors.append('log: ' + prm['entry'].get('text', ''))
        elif m == 'Network.requestWillBeSent':
            u = prm['request']['url']
            if u.split('#')[0] != url and not u.startswith(('data:', 'blob:')):
                requests.append(u)
    r['errors'] = errors + p.eval('attnviz.errors')
    r['requests'] = requests
    p.close()
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--chromium', default=os.environ.get('ATTNVIZ_CHROMIUM', ''))
    ap.add_argument('--out', required=True, help='folder for screenshots and the Chromium profile')
    ap.add_argument('pages', nargs='+', help='KIND=PAGE.html, KIND one of ' + ', '.join(SCENARIOS))
    a = ap.parse_args()
    exe = a.chromium or next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome')
                             if shutil.which(n)), None)
    if not exe or not os.access(exe, os.X_OK):
        print('SKIPPED: no Chromium found (install Debian\'s chromium, or set ATTNVIZ_CHROMIUM)', file=sys.stderr)
        return SKIP
    jobs = []
    for spec in a.pages:
        kind, _, path = spec.partition('=')
        if kind not in SCENARIOS or not os.path.isfile(path):
            print('check_pages: bad page argument ' + spec, file=sys.stderr)
            return 2
        jobs.append((kind, path))
    os.makedirs(a.out, exist_ok=True)
    profile = tempfile.mkdtemp(prefix='chromium-', dir=a.out)
    try:
        b = Browser(exe, profile)
        try:
            version = b.send('Browser.getVersion', timeout=30)['product']
        except BrowserError as e:
            b.close()
            print('SKIPPED: Chromium (%s) cannot run here: %s' % (exe, e), file=sys.stderr)
            return SKIP
        b.send('Browser.setDownloadBehavior', {'behavior': 'deny'})
        report = {'browser': version, 'pages': []}
        try:
            for i, (kind, path) in enumerate(jobs):
                shot = os.path.join(a.out, '%02d-%s.png' % (i, kind))
                report['pages'].append(check_page(b, kind, path, shot))
        finally:
            b.close()
        print(json.dumps(report, indent=1))
        return 0
    except BrowserError as e:
        print('check_pages: ' + str(e), file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
