// Airlock JavaScript/TypeScript kernel runner (Node >= 18).
//
// Protocol: fd 3 carries commands from the Go kernel, fd 4 carries events to
// it, one JSON object per line. User output (process.stdout/stderr writes,
// console.*) is turned into events on fd 4 with synchronous writes, so it is
// ordered with results and errors and can never corrupt the framing.
//
// Each cell runs in the main context with vm's runInThisContext and
// breakOnSigint, so SIGINT from Go interrupts a busy synchronous loop while
// globals survive. Top-level declarations are rewritten so that they become
// globals and may be redeclared in a later cell (REPL semantics).
//
// Everything lives inside one function so that none of it can leak into user
// globals.
(function airlockRunner() {
'use strict';

const fs = require('fs');
const path = require('path');
const util = require('util');
const vm = require('vm');
const net = require('net');
const readline = require('readline');
const Module = require('module');
const { pathToFileURL } = require('url');

// Reopen the inherited pipes with close-on-exec so that processes spawned by
// user code do not inherit the kernel's control channel.
function reopen(fd, flags) {
  try {
    const nfd = fs.openSync('/proc/self/fd/' + fd, flags);
    fs.closeSync(fd);
    return nfd;
  } catch (_) {
    return fd;
  }
}
const EVENTS_FD = reopen(4, 'w');
const COMMANDS_FD = reopen(3, 'r');

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function send(obj) {
  const buf = Buffer.from(JSON.stringify(obj) + '\n');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(EVENTS_FD, buf, off, buf.length - off);
    } catch (e) {
      if (e.code === 'EAGAIN' || e.code === 'EINTR') {
        Atomics.wait(sleepCell, 0, 0, 1);
        continue;
      }
      // The Go side is gone: nothing left to serve.
      process.exit(1);
    }
  }
}

// ---- user output ------------------------------------------------------------

function hookStream(stream, type) {
  stream.write = function write(chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    let text;
    if (typeof chunk === 'string') {
      text = encoding && encoding !== 'utf8' && encoding !== 'utf-8' ? Buffer.from(chunk, encoding).toString('utf8') : chunk;
    } else if (chunk instanceof Uint8Array) {
      text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
    } else {
      text = String(chunk);
    }
    if (text.length > 0) send({ type, text });
    if (typeof cb === 'function') process.nextTick(cb);
    return true;
  };
}
hookStream(process.stdout, 'stdout');
hookStream(process.stderr, 'stderr');

// ---- module loading for user code -----------------------------------------

function globalRoots() {
  const roots = [];
  for (const p of (process.env.NODE_PATH || '').split(path.delimiter)) if (p) roots.push(p);
  roots.push(path.resolve(process.execPath, '..', '..', 'lib', 'node_modules'));
  roots.push('/usr/local/lib/node_modules', '/usr/lib/node_modules', '/usr/share/nodejs', '/usr/lib/nodejs');
  return [...new Set(roots)];
}

function cwdRequire() {
  return Module.createRequire(path.join(process.cwd(), '[airlock]'));
}

function userRequire(id) {
  const req = cwdRequire();
  try {
    return req(id);
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && !id.startsWith('.') && !path.isAbsolute(id)) {
      let resolved;
      try {
        resolved = req.resolve(id, { paths: globalRoots() });
      } catch (_) {
        throw e;
      }
      return req(resolved);
    }
    throw e;
  }
}
userRequire.resolve = (id, opts) => cwdRequire().resolve(id, opts);
userRequire.cache = Module._cache;

const isBuiltin = Module.isBuiltin || ((s) => Module.builtinModules.includes(s.replace(/^node:/, '')));

// pickExport chooses an ESM entry from a package.json "exports" value.
function pickExport(exp) {
  if (typeof exp === 'string') return exp;
  if (Array.isArray(exp)) {
    for (const e of exp) {
      const r = pickExport(e);
      if (r) return r;
    }
    return null;
  }
  if (exp && typeof exp === 'object') {
    if ('.' in exp) return pickExport(exp['.']);
    for (const cond of ['import', 'node', 'module', 'default', 'require']) {
      if (cond in exp) {
        const r = pickExport(exp[cond]);
        if (r) return r;
      }
    }
  }
  return null;
}

// resolveESM finds a bare package (import-only packages too) the way a module
// in the current directory would, then in the global roots.
function resolveESM(spec) {
  for (const base of [process.cwd(), ...globalRoots()]) {
    try {
      return Module.createRequire(path.join(base, '[airlock]')).resolve(spec);
    } catch (_) {
      /* try the package.json below */
    }
  }
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  const sub = parts.slice(spec.startsWith('@') ? 2 : 1).join('/');
  const dirs = [];
  for (let d = process.cwd(); ; d = path.dirname(d)) {
    dirs.push(path.join(d, 'node_modules'));
    if (d === path.dirname(d)) break;
  }
  dirs.push(...globalRoots());
  for (const dir of dirs) {
    const pkgDir = path.join(dir, name);
    let pkg;
    try {
      pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
    } catch (_) {
      continue;
    }
    if (sub) {
      const viaExports = pkg.exports && typeof pkg.exports === 'object' ? pickExport(pkg.exports['./' + sub]) : null;
      return path.join(pkgDir, viaExports || sub);
    }
    return path.join(pkgDir, pickExport(pkg.exports) || pkg.module || pkg.main || 'index.js');
  }
  return null;
}

async function userImport(spec) {
  spec = String(spec);
  if (isBuiltin(spec) || /^(node|file|data):/.test(spec)) return import(spec);
  if (spec.startsWith('.') || path.isAbsolute(spec)) {
    return import(pathToFileURL(path.resolve(process.cwd(), spec)).href);
  }
  const file = resolveESM(spec);
  return import(file ? pathToFileURL(file).href : spec);
}

function importDefault(ns) {
  return ns && 'default' in ns ? ns.default : ns;
}

function importNamed(ns, name) {
  if (name in ns) return ns[name];
  const d = ns.default;
  return d != null && (typeof d === 'object' || typeof d === 'function') ? d[name] : undefined;
}

Object.defineProperty(globalThis, 'require', { value: userRequire, writable: true, configurable: true });
Object.defineProperty(globalThis, '__airlock', {
  value: { import: userImport, default: importDefault, named: importNamed },
  writable: false,
  configurable: false,
  enumerable: false,
});

// ---- tokenizer ---------------------------------------------------------------

const KEYWORDS_BEFORE_EXPR = new Set([
  'return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else',
  'yield', 'await', 'extends',
]);

// tokenize returns significant tokens {t, v, s, e, nl} with t one of name, num,
// str, tmpl, regex, punc; nl tells whether a line break precedes the token.
// Bracket tokens get `match` (index of the partner) and `depth` (nesting
// level outside the token).
function tokenize(src) {
  const toks = [];
  let i = 0;
  let nl = false;
  const n = src.length;
  const prevAllowsRegex = () => {
    const p = toks[toks.length - 1];
    if (!p) return true;
    if (p.t === 'name') return KEYWORDS_BEFORE_EXPR.has(p.v);
    if (p.t === 'punc') return !(p.v === ')' || p.v === ']' || p.v === '++' || p.v === '--');
    return false;
  };
  const skipTemplate = (j) => {
    // j is just after the opening backtick.
    while (j < n) {
      const c = src[j];
      if (c === '\\') j += 2;
      else if (c === '`') return j + 1;
      else if (c === '$' && src[j + 1] === '{') j = skipBraced(j + 2);
      else j++;
    }
    return n;
  };
  const skipBraced = (j) => {
    // Skip an expression up to its unmatched '}', honouring nesting.
    const sub = tokenizeFrom(src, j, true);
    return sub;
  };
  function tokenizeFrom(s, start, untilBrace) {
    // Only used for template substitutions: returns the index after the
    // closing brace.
    let depth = 0;
    let k = start;
    let last = null;
    while (k < n) {
      const c = s[k];
      if (c === '/' && s[k + 1] === '/') {
        while (k < n && s[k] !== '\n') k++;
      } else if (c === '/' && s[k + 1] === '*') {
        const end = s.indexOf('*/', k + 2);
        k = end < 0 ? n : end + 2;
      } else if (c === '"' || c === "'") {
        k = skipString(k);
        last = 'v';
      } else if (c === '`') {
        k = skipTemplate(k + 1);
        last = 'v';
      } else if (c === '{') {
        depth++;
        k++;
        last = 'p';
      } else if (c === '}') {
        if (depth === 0 && untilBrace) return k + 1;
        depth--;
        k++;
        last = 'v';
      } else if (c === '/' && last !== 'v') {
        k = skipRegex(k);
        last = 'v';
      } else if (/\s/.test(c)) {
        k++;
      } else {
        last = /[\w$)\]]/.test(c) ? 'v' : 'p';
        k++;
      }
    }
    return n;
  }
  const skipString = (j) => {
    const q = src[j];
    j++;
    while (j < n && src[j] !== q) {
      if (src[j] === '\\') j++;
      else if (src[j] === '\n') break;
      j++;
    }
    return j + 1;
  };
  const skipRegex = (j) => {
    j++;
    let inClass = false;
    while (j < n) {
      const c = src[j];
      if (c === '\\') j += 2;
      else if (c === '\n') break;
      else {
        if (c === '[') inClass = true;
        else if (c === ']') inClass = false;
        else if (c === '/' && !inClass) {
          j++;
          break;
        }
        j++;
      }
    }
    while (j < n && /[\w$]/.test(src[j])) j++;
    return j;
  };
  const PUNCS = [
    '>>>=', '...', '===', '!==', '**=', '<<=', '>>=', '>>>', '&&=', '||=', '??=',
    '=>', '==', '!=', '<=', '>=', '&&', '||', '??', '?.', '++', '--', '+=', '-=', '*=', '/=', '%=', '&=', '|=',
    '^=', '**', '<<', '>>',
  ];
  const stack = [];
  while (i < n) {
    const c = src[i];
    if (c === '\n' || c === '\u2028' || c === '\u2029') {
      nl = true;
      i++;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      if (src.slice(i, stop).includes('\n')) nl = true;
      i = stop;
      continue;
    }
    if (i === 0 && c === '#' && src[1] === '!') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    const start = i;
    let t;
    if (c === '"' || c === "'") {
      i = skipString(i);
      t = 'str';
    } else if (c === '`') {
      i = skipTemplate(i + 1);
      t = 'tmpl';
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] || ''))) {
      i++;
      while (i < n && /[\w.]/.test(src[i])) i++;
      t = 'num';
    } else if (/[\p{L}\p{Nl}$_\\#]/u.test(c)) {
      i++;
      while (i < n && /[\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}$_\\\u200c\u200d]/u.test(src[i])) i++;
      t = 'name';
    } else if (c === '/' && prevAllowsRegex()) {
      i = skipRegex(i);
      t = 'regex';
    } else {
      t = 'punc';
      const p = PUNCS.find((x) => src.startsWith(x, i));
      i += p ? p.length : 1;
    }
    const tok = { t, v: src.slice(start, i), s: start, e: i, nl, depth: stack.length };
    nl = false;
    if (t === 'punc' && (tok.v === '(' || tok.v === '[' || tok.v === '{')) {
      stack.push(toks.length);
    } else if (t === 'punc' && (tok.v === ')' || tok.v === ']' || tok.v === '}')) {
      if (stack.length) {
        const open = stack.pop();
        toks[open].match = toks.length;
        tok.match = open;
        tok.depth = stack.length;
      }
    }
    toks.push(tok);
  }
  return toks;
}

// ---- cell rewriting ------------------------------------------------------------

const CONTINUES = new Set([
  '.', '?.', '(', '[', ',', '?', ':', '=', '==', '===', '!=', '!==', '+', '-', '*', '/', '%', '**', '<', '>', '<=',
  '>=', '&&', '||', '??', '&', '|', '^', '<<', '>>', '>>>', '+=', '-=', '*=', '/=', '%=', '**=', '<<=', '>>=',
  '>>>=', '&=', '|=', '^=', '&&=', '||=', '??=', '=>', ')', ']', '}',
]);
const CONTINUE_NAMES = new Set(['in', 'instanceof', 'else', 'catch', 'finally', 'of']);
const NOT_END_NAMES = new Set(['typeof', 'void', 'delete', 'new', 'in', 'instanceof', 'await', 'yield', 'else', 'do', 'return', 'throw', 'case']);
const STATEMENT_KEYWORDS = new Set([
  'const', 'let', 'var', 'function', 'class', 'if', 'for', 'while', 'do', 'switch', 'try', 'return', 'throw',
  'break', 'continue', 'import', 'export', 'debugger', 'with',
]);

function canEnd(tok) {
  if (!tok) return false;
  if (tok.t === 'name') return !NOT_END_NAMES.has(tok.v);
  if (tok.t === 'punc') return tok.v === ')' || tok.v === ']' || tok.v === '}' || tok.v === '++' || tok.v === '--';
  return true;
}

function continuesExpr(tok) {
  if (tok.t === 'punc') return CONTINUES.has(tok.v) && tok.v !== '++' && tok.v !== '--';
  if (tok.t === 'tmpl') return true;
  if (tok.t === 'name') return CONTINUE_NAMES.has(tok.v);
  return false;
}

// Cell is the analysis of one cell's top level: tokens at depth 0 only.
class Cell {
  constructor(src) {
    this.src = src;
    this.toks = tokenize(src);
    this.edits = [];
  }
  // next index of a top-level token after i (skipping nested brackets).
  next(i) {
    const tok = this.toks[i];
    if (tok.match !== undefined && tok.match > i) return tok.match + 1;
    return i + 1;
  }
  // isBoundary tells whether a statement may end right before token j (a
  // top-level token following top-level token i).
  isBoundary(i, j) {
    const a = this.toks[i];
    const b = this.toks[j];
    if (a.v === ';' && a.t === 'punc') return true;
    if (!b.nl) return false;
    if (b.t === 'punc' && (b.v === '++' || b.v === '--')) return true;
    return canEnd(a) && !continuesExpr(b);
  }
  // statementStarts lists the indexes of top-level tokens that start a statement.
  statementStarts() {
    const starts = [];
    let prev = -1;
    for (let i = 0; i < this.toks.length; i = this.next(i)) {
      const tok = this.toks[i];
      if (tok.t === 'punc' && tok.v === ';') {
        prev = i;
        continue;
      }
      const joins = tok.t === 'name' && (CONTINUE_NAMES.has(tok.v) || tok.v === 'while');
      if (prev < 0 || this.isBoundary(prev, i) || (this.afterBlock(prev) && !joins)) starts.push(i);
      prev = this.lastOf(i);
    }
    return starts;
  }
  lastOf(i) {
    const tok = this.toks[i];
    return tok.match !== undefined && tok.match > i ? tok.match : i;
  }
  // afterBlock: token index p is a '}' that closes a statement-level block
  // (if/for/function/class bodies, plain blocks).
  afterBlock(p) {
    const tok = this.toks[p];
    if (!(tok.t === 'punc' && tok.v === '}')) return false;
    return this.blockStarts && this.blockStarts.has(tok.match);
  }
  edit(s, e, text) {
    this.edits.push({ s, e, text });
  }
  // take returns source [s, e) with the edits inside it applied, and drops
  // those edits: the caller is replacing the whole range.
  take(s, e) {
    const inner = this.edits.filter((ed) => ed.s >= s && ed.e <= e);
    this.edits = this.edits.filter((ed) => !inner.includes(ed));
    let out = this.src.slice(s, e);
    for (const ed of inner.sort((x, y) => y.s - x.s || y.e - x.e)) {
      out = out.slice(0, ed.s - s) + ed.text + out.slice(ed.e - s);
    }
    return out;
  }
  apply() {
    // Right to left; at equal starts replacements go before insertions.
    const edits = this.edits.slice().sort((x, y) => y.s - x.s || y.e - x.e);
    let out = this.src;
    for (const ed of edits) out = out.slice(0, ed.s) + ed.text + out.slice(ed.e);
    return out;
  }
}

// boundNames collects the identifiers bound by a destructuring pattern
// spanning tokens [a, b).
function boundNames(cell, a, b, names) {
  const toks = cell.toks;
  const tok = toks[a];
  if (tok.t === 'name') {
    names.push(tok.v);
    return;
  }
  if (!(tok.t === 'punc' && (tok.v === '[' || tok.v === '{'))) return;
  const close = tok.match;
  const isObj = tok.v === '{';
  // split elements by top-level commas inside the pattern
  let i = a + 1;
  while (i < close) {
    let j = i;
    while (j < close && !(toks[j].t === 'punc' && toks[j].v === ',' && toks[j].depth === tok.depth + 1)) {
      j = toks[j].match !== undefined && toks[j].match > j ? toks[j].match + 1 : j + 1;
    }
    // element tokens [i, j)
    let k = i;
    if (k < j && toks[k].v === '...') k++;
    if (k < j) {
      if (isObj) {
        // key [: pattern] [= default]
        let colon = -1;
        for (let m = k; m < j; m = toks[m].match !== undefined && toks[m].match > m ? toks[m].match + 1 : m + 1) {
          if (toks[m].t === 'punc' && toks[m].v === ':') {
            colon = m;
            break;
          }
          if (toks[m].t === 'punc' && toks[m].v === '=') break;
        }
        if (colon >= 0) boundNames(cell, colon + 1, j, names);
        else if (toks[k].t === 'name') names.push(toks[k].v);
      } else {
        boundNames(cell, k, j, names);
      }
    }
    i = j + 1;
  }
}

// rewriteDeclaration turns `const|let|var d1, d2` starting at top-level token
// index i into plain assignments to globals; returns false when the shape is
// not understood.
function rewriteDeclaration(cell, i, stmtEnd) {
  const toks = cell.toks;
  const parts = [];
  let j = i + 1;
  while (j < stmtEnd) {
    const target = toks[j];
    let afterTarget;
    if (target.t === 'name') afterTarget = j + 1;
    else if (target.t === 'punc' && (target.v === '{' || target.v === '[') && target.match !== undefined) afterTarget = target.match + 1;
    else return false;
    const targetSrc = cell.take(target.s, toks[afterTarget - 1].e);
    let k = afterTarget;
    let initSrc = null;
    if (k < stmtEnd && toks[k].t === 'punc' && toks[k].v === '=') {
      let m = k + 1;
      while (m < stmtEnd && !(toks[m].t === 'punc' && (toks[m].v === ',' || toks[m].v === ';'))) m = cell.next(m);
      if (m === k + 1) return false;
      initSrc = cell.take(toks[k + 1].s, toks[m - 1].e);
      k = m;
    }
    if (target.t === 'name') parts.push(`${targetSrc} = ${initSrc === null ? 'undefined' : initSrc}`);
    else if (initSrc === null) return false;
    else parts.push(`(${targetSrc} = ${initSrc})`);
    if (k < stmtEnd && toks[k].t === 'punc' && toks[k].v === ',') {
      j = k + 1;
      continue;
    }
    if (k < stmtEnd && !(toks[k].t === 'punc' && toks[k].v === ';')) return false;
    const last = toks[k - 1];
    cell.edit(toks[i].s, last.e, ';' + parts.join(', '));
    return true;
  }
  return false;
}

// rewriteImport turns a top-level import statement at token i into
// assignments from a dynamic import; returns the number of the temp used.
function rewriteImport(cell, i, stmtEnd, tmp) {
  const toks = cell.toks;
  let j = i + 1;
  const assigns = [];
  const v = `__airlock_m${tmp}`;
  if (toks[j] && toks[j].t === 'str') {
    cell.edit(toks[i].s, toks[j].e, `;await __airlock.import(${toks[j].v})`);
    return true;
  }
  while (j < stmtEnd) {
    const tok = toks[j];
    if (tok.t === 'name' && tok.v === 'from') break;
    if (tok.t === 'punc' && tok.v === ',') {
      j++;
      continue;
    }
    if (tok.t === 'punc' && tok.v === '*') {
      // * as ns
      if (!(toks[j + 1] && toks[j + 1].v === 'as' && toks[j + 2] && toks[j + 2].t === 'name')) return false;
      assigns.push(`${toks[j + 2].v} = ${v}`);
      j += 3;
      continue;
    }
    if (tok.t === 'punc' && tok.v === '{') {
      const close = tok.match;
      let k = j + 1;
      while (k < close) {
        if (toks[k].t === 'punc' && toks[k].v === ',') {
          k++;
          continue;
        }
        let imported = toks[k].v;
        if (toks[k].t === 'str') imported = JSON.parse(toks[k].v.replace(/^'|'$/g, '"'));
        let local = imported;
        if (imported === 'type' && toks[k + 1] && toks[k + 1].t === 'name' && toks[k + 1].v !== 'as') {
          // TS `type X` import specifier: nothing at run time.
          k += 2;
          continue;
        }
        if (toks[k + 1] && toks[k + 1].v === 'as') {
          local = toks[k + 2].v;
          k += 3;
        } else {
          k++;
        }
        assigns.push(
          imported === 'default' ? `${local} = __airlock.default(${v})` : `${local} = __airlock.named(${v}, ${JSON.stringify(imported)})`,
        );
      }
      j = close + 1;
      continue;
    }
    if (tok.t === 'name') {
      assigns.push(`${tok.v} = __airlock.default(${v})`);
      j++;
      continue;
    }
    return false;
  }
  if (!(toks[j] && toks[j].v === 'from' && toks[j + 1] && toks[j + 1].t === 'str')) return false;
  let end = toks[j + 1].e;
  // import attributes: `with {…}` / `assert {…}`
  const after = toks[j + 2];
  if (after && after.t === 'name' && (after.v === 'with' || after.v === 'assert') && toks[j + 3] && toks[j + 3].v === '{') {
    end = toks[toks[j + 3].match].e;
  }
  const parts = [`var ${v} = await __airlock.import(${toks[j + 1].v})`, ...assigns];
  cell.edit(toks[i].s, end, ';' + parts.join('; '));
  return true;
}

// findBlockStarts marks '{' tokens at top level that open statement bodies,
// so that a '}' closing them ends a statement.
function markBlocks(cell) {
  const toks = cell.toks;
  const blocks = new Set();
  for (let i = 0; i < toks.length; i = cell.next(i)) {
    const tok = toks[i];
    if (!(tok.t === 'punc' && tok.v === '{')) continue;
    const p = toks[i - 1];
    if (!p) {
      blocks.add(i);
      continue;
    }
    if (p.t === 'punc' && (p.v === ';' || p.v === '}')) blocks.add(i);
    else if (p.t === 'punc' && p.v === ')') {
      // if (…) {, for (…) {, function f(…) {, while (…) {, catch (…) {
      const open = p.match;
      const before = toks[open - 1];
      const before2 = toks[open - 2];
      if (before && before.t === 'name' && ['if', 'for', 'while', 'switch', 'catch', 'with'].includes(before.v)) blocks.add(i);
      else if (before && before.t === 'name' && before2 && before2.t === 'name' && before2.v === 'function') blocks.add(i);
      else if (before && before.t === 'name' && before.v === 'function') blocks.add(i);
    } else if (p.t === 'name' && ['else', 'try', 'finally', 'do'].includes(p.v)) blocks.add(i);
    else if (p.t === 'name') {
      // class X {, class X extends Y {
      for (let k = i - 1; k >= 0 && k >= i - 6; k--) {
        if (toks[k].t === 'name' && toks[k].v === 'class') {
          blocks.add(i);
          break;
        }
        if (toks[k].t === 'punc') break;
      }
    }
  }
  cell.blockStarts = blocks;
}

function isStatementStartTok(tok) {
  return tok.t === 'name' && STATEMENT_KEYWORDS.has(tok.v);
}

// hasTopLevelAwait reports an `await` (or import statement) outside function
// bodies. It errs towards true, which only selects the async path.
function needsAsync(cell, starts) {
  const toks = cell.toks;
  for (const i of starts) {
    const tok = toks[i];
    if (tok.t === 'name' && tok.v === 'import' && !(toks[i + 1] && (toks[i + 1].v === '(' || toks[i + 1].v === '.'))) return true;
  }
  // Function bodies: '{' following '=>' or a ')' whose '(' follows `function`, a name, or async.
  const fnBody = new Set();
  for (let i = 0; i < toks.length; i++) {
    const tok = toks[i];
    if (!(tok.t === 'punc' && tok.v === '{')) continue;
    const p = toks[i - 1];
    if (!p) continue;
    if (p.t === 'punc' && p.v === '=>') fnBody.add(i);
    else if (p.t === 'punc' && p.v === ')' && p.match !== undefined) {
      const before = toks[p.match - 1];
      if (before && before.t === 'name' && !['if', 'for', 'while', 'switch', 'catch', 'with'].includes(before.v)) fnBody.add(i);
      else if (before && before.t === 'punc' && (before.v === '*' || before.v === ']')) fnBody.add(i);
    }
  }
  let skipUntil = -1;
  for (let i = 0; i < toks.length; i++) {
    if (i < skipUntil) continue;
    const tok = toks[i];
    if (fnBody.has(i)) {
      skipUntil = tok.match === undefined ? toks.length : tok.match;
      continue;
    }
    if (tok.t === 'name' && tok.v === 'await' && !(toks[i - 1] && toks[i - 1].v === '.')) return true;
  }
  return false;
}

// rewriteDynamicImports replaces import(...) calls with the cwd-aware loader.
function rewriteDynamicImports(cell) {
  const toks = cell.toks;
  for (let i = 0; i < toks.length - 1; i++) {
    const tok = toks[i];
    if (tok.t === 'name' && tok.v === 'import' && toks[i + 1].v === '(' && !(toks[i - 1] && toks[i - 1].v === '.')) {
      cell.edit(tok.s, tok.e, '__airlock.import');
    }
  }
}

// rewriteExports drops `export` so that exported declarations act like plain ones.
function rewriteExports(cell, starts) {
  const toks = cell.toks;
  for (const i of starts) {
    const tok = toks[i];
    if (!(tok.t === 'name' && tok.v === 'export')) continue;
    const nx = toks[i + 1];
    if (nx && nx.t === 'punc' && nx.v === '{' && nx.match !== undefined) {
      let end = toks[nx.match].e;
      if (toks[nx.match + 1] && toks[nx.match + 1].v === 'from' && toks[nx.match + 2]) end = toks[nx.match + 2].e;
      cell.edit(tok.s, end, '');
    } else if (nx && nx.t === 'name' && nx.v === 'default') {
      cell.edit(tok.s, nx.e, '');
    } else {
      cell.edit(tok.s, tok.e, '');
    }
  }
}

// transform returns {code, async, returnsLast} candidates for one cell, most
// rewritten first.
function transform(src) {
  const cell = new Cell(src);
  markBlocks(cell);
  let starts = cell.statementStarts();
  const toks = cell.toks;
  // `export` prefixes are dropped: analyse the declaration behind them.
  const declStart = (i) => (toks[i].t === 'name' && toks[i].v === 'export' && toks[i + 1] && toks[i + 1].t === 'name' && toks[i + 1].v !== 'default' ? i + 1 : i);
  const async = needsAsync(cell, starts);
  rewriteDynamicImports(cell);
  rewriteExports(cell, starts);
  const fnNames = [];
  let tmp = 0;
  for (let si = 0; si < starts.length; si++) {
    const i = declStart(starts[si]);
    const stmtEnd = si + 1 < starts.length ? starts[si + 1] : toks.length;
    const tok = toks[i];
    if (tok.t !== 'name') continue;
    const nx = toks[i + 1];
    if ((tok.v === 'const' || tok.v === 'let' || tok.v === 'var') && nx && (nx.t === 'name' || nx.v === '{' || nx.v === '[')) {
      if (tok.v === 'let' && nx.t === 'name' && (nx.v === 'in' || nx.v === 'instanceof')) continue;
      if (!async) {
        if (tok.v !== 'var') cell.edit(tok.s, tok.e, 'var');
      } else {
        const saved = cell.edits.slice();
        if (!rewriteDeclaration(cell, i, stmtEnd)) {
          cell.edits = saved;
          cell.edit(tok.s, tok.e, 'var');
        }
      }
    } else if (tok.v === 'class' && nx && nx.t === 'name') {
      // class C {…} → C = class C {…};  (classes are lexical: make them redeclarable)
      let k = i + 2;
      while (k < stmtEnd && !(toks[k].t === 'punc' && toks[k].v === '{' && toks[k].depth === 0)) k = cell.next(k);
      if (k >= stmtEnd || toks[k].match === undefined) continue;
      cell.edit(tok.s, tok.s, (async ? ';' : 'var ') + nx.v + ' = ');
      cell.edit(toks[toks[k].match].e, toks[toks[k].match].e, ';');
    } else if (async && tok.v === 'function' && nx && nx.t === 'name') {
      fnNames.push(nx.v);
    } else if (async && tok.v === 'async' && nx && nx.v === 'function') {
      const name = toks[i + 2] && toks[i + 2].t === 'name' ? toks[i + 2] : toks[i + 3];
      if (name && name.t === 'name') fnNames.push(name.v);
    } else if (async && tok.v === 'import' && nx && nx.v !== '(' && nx.v !== '.') {
      if (!rewriteImport(cell, i, stmtEnd, tmp++)) throw new SyntaxError('unsupported import statement');
    }
  }
  const candidates = [];
  // Like Node's REPL: a cell that is just `{…}` means an object literal.
  if (/^\s*\{/.test(src) && /\}\s*$/.test(src)) {
    candidates.push(async ? { code: `(async () => { return (${src}\n)\n})()`, async: true } : { code: `(${src}\n)`, async: false });
  }
  if (!async) {
    candidates.push({ code: cell.apply(), async: false });
    candidates.push({ code: src, async: false });
    return candidates;
  }
  const hoist = fnNames.map((f) => `globalThis.${f} = ${f};`).join(' ');
  const body = cell.apply();
  // Return the value of the last statement when it is an expression.
  const lastStart = starts[starts.length - 1];
  let withReturn = null;
  if (lastStart !== undefined && !isStatementStartTok(toks[lastStart]) && !(toks[lastStart].t === 'punc' && toks[lastStart].v === '{')) {
    const lastEnd = (() => {
      let e = toks.length - 1;
      while (e > lastStart && toks[e].t === 'punc' && toks[e].v === ';') e--;
      return toks[e].e;
    })();
    cell.edit(toks[lastStart].s, toks[lastStart].s, 'return (');
    cell.edit(lastEnd, lastEnd, '\n)');
    withReturn = cell.apply();
  }
  const wrap = (b) => `(async () => { ${hoist} ${b}\n})()`;
  if (withReturn !== null) candidates.push({ code: wrap(withReturn), async: true });
  candidates.push({ code: wrap(body), async: true });
  candidates.push({ code: wrap(src), async: true });
  return candidates;
}

// ---- TypeScript ----------------------------------------------------------------

let ts = null;
function loadTypeScript() {
  if (ts) return ts;
  let p;
  try {
    p = findTypeScript();
    if (!p) throw new Error('not found');
  } catch (_) {
    const err = new Error(
      'TypeScript needs the "typescript" npm package, which was not found (looked in the working directory, NODE_PATH and ' +
        globalRoots().join(', ') + '); install it with `npm install -g typescript`',
    );
    err.name = 'TypeScriptNotFound';
    throw err;
  }
  ts = require(p);
  return ts;
}

function transpileTS(src) {
  const t = loadTypeScript();
  const out = t.transpileModule(src, {
    reportDiagnostics: false,
    compilerOptions: {
      target: t.ScriptTarget.ES2022,
      module: t.ModuleKind.ESNext,
      verbatimModuleSyntax: true,
      isolatedModules: true,
      esModuleInterop: true,
      experimentalDecorators: true,
      jsx: t.JsxEmit.React,
      sourceMap: false,
      removeComments: false,
    },
  });
  // A module with no imports/exports gets `export {};`; drop it.
  return out.outputText.replace(/^export \{\};\s*$/m, '');
}

// ---- execution --------------------------------------------------------------

let current = null; // the running cell: {id, errored}
let interruptCell = null; // rejects the running cell's pending promise

function errorInfo(err) {
  if (err instanceof Error || (err && typeof err === 'object' && 'stack' in err && 'message' in err)) {
    let stack = String(err.stack || '');
    // Cut frames of the runner itself.
    const lines = stack.split('\n');
    const keep = [];
    for (const l of lines) {
      if (/^\s+at /.test(l) && (l.includes('node:vm') || l.includes(__filename) || l.includes('node:internal'))) break;
      keep.push(l);
    }
    stack = keep.join('\n');
    return { name: String(err.name || (err.constructor && err.constructor.name) || 'Error'), value: String(err.message), traceback: stack };
  }
  const shown = util.inspect(err);
  return { name: 'Error', value: shown, traceback: 'Uncaught ' + shown };
}

function reportError(err, id) {
  const info = errorInfo(err);
  if (current && current.id === id && !current.errored) {
    current.errored = true;
    send({ type: 'error', id, ...info });
  } else {
    send({ type: 'stderr', text: (info.traceback || `${info.name}: ${info.value}`) + '\n' });
  }
}

process.on('uncaughtException', (err) => reportError(err, current && current.id));
process.on('unhandledRejection', (reason) => {
  const err = reason instanceof Error ? reason : reason;
  if (current && !current.errored) {
    current.errored = true;
    const info = errorInfo(err);
    send({ type: 'error', id: current.id, name: info.name, value: info.value, traceback: 'Unhandled promise rejection: ' + info.traceback });
  } else {
    send({ type: 'stderr', text: 'Unhandled promise rejection: ' + errorInfo(err).traceback + '\n' });
  }
});
// sigintSeen says the running cell is being interrupted: a child process
// in the same process group dies of the same SIGINT, and its error (say
// execSync's "Command failed") may reach the cell before node's own
// interrupt does; either way the cell was interrupted.
let sigintSeen = false;
process.on('SIGINT', () => {
  sigintSeen = true;
  if (interruptCell) interruptCell();
});

function isPlainObject(v) {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function resultOf(value) {
  const res = { type: 'result', text: util.inspect(value) };
  if (isPlainObject(value)) {
    try {
      const json = JSON.parse(JSON.stringify(value));
      if (isPlainObject(json)) res.json = json;
    } catch (_) {
      /* not JSON-representable */
    }
  }
  return res;
}

function interruptedError() {
  const err = new Error('Execution interrupted');
  err.name = 'Interrupted';
  err.stack = 'Interrupted: Execution interrupted';
  return err;
}

async function execute(cmd) {
  const id = cmd.id;
  current = { id, errored: false };
  sigintSeen = false;
  const saved = {};
  for (const [k, v] of Object.entries(cmd.env || {})) {
    saved[k] = Object.prototype.hasOwnProperty.call(process.env, k) ? process.env[k] : undefined;
    process.env[k] = v;
  }
  try {
    let src = cmd.code;
    if (cmd.lang === 'typescript') src = transpileTS(src);
    const candidates = transform(src);
    let script = null;
    let chosen = null;
    let firstErr = null;
    for (const c of candidates) {
      try {
        script = new vm.Script(c.code, { filename: `<cell ${cmd.count}>` });
        chosen = c;
        break;
      } catch (e) {
        if (!firstErr || c === candidates[candidates.length - 1]) firstErr = e;
      }
    }
    if (!script) {
      // Report the error of the least rewritten form: it is the user's.
      throw firstErr;
    }
    let value = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
    if (chosen.async) {
      value = await new Promise((resolve, reject) => {
        interruptCell = () => reject(interruptedError());
        Promise.resolve(value).then(resolve, reject);
      });
    }
    // Let rejections of promises created by the cell surface while it is current.
    await new Promise((r) => setImmediate(r));
    if (value !== undefined && !current.errored) send({ type: 'result', id, ...resultOf(value) });
  } catch (err) {
    let e = err;
    if (err && (err.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED' || err.signal === 'SIGINT' || sigintSeen)) e = interruptedError();
    reportError(e, id);
  } finally {
    interruptCell = null;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    current = null;
    send({ type: 'done', id });
  }
}

// Commands run strictly one after another.
let queue = Promise.resolve();
const commands = new net.Socket({ fd: COMMANDS_FD, readable: true, writable: false });
readline.createInterface({ input: commands, crlfDelay: Infinity }).on('line', (line) => {
  if (!line) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (_) {
    return;
  }
  if (cmd.type === 'execute') queue = queue.then(() => execute(cmd));
});
commands.on('end', () => process.exit(0));
commands.on('error', () => process.exit(1));

function findTypeScript() {
  try {
    return require.resolve('typescript', { paths: [process.cwd(), ...globalRoots()] });
  } catch (_) {
    return '';
  }
}

send({ type: 'ready', node: process.version, typescript: findTypeScript() });
})();
