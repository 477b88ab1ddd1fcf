import assert from 'node:assert/strict';
import { test } from 'node:test';

import { applyHunks, fileSides, parseUnifiedDiff } from '../diff';

const ORIGINAL = 'pub fn add(a: i32, b: i32) -> i32 {\n    todo!()\n}\n';
const RESULT = '/// The sum of `a` and `b`.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n';
const DIFF = `diff --git a/src/lib.rs b/src/lib.rs
index 1111111..2222222 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,4 @@
+/// The sum of \`a\` and \`b\`.
 pub fn add(a: i32, b: i32) -> i32 {
-    todo!()
+    a + b
 }
diff --git a/tests/add.rs b/tests/add.rs
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/tests/add.rs
@@ -0,0 +1,2 @@
+#[test]
+fn adds() { assert_eq!(pitcrew::add(1, 2), 3); }
diff --git a/old.txt b/old.txt
deleted file mode 100644
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-gone
`;

test('a unified diff parses into files and hunks', () => {
  const files = parseUnifiedDiff(DIFF);
  assert.deepEqual(
    files.map((f) => [f.path, f.oldPath, f.newPath, f.hunks.length]),
    [
      ['src/lib.rs', 'src/lib.rs', 'src/lib.rs', 1],
      ['tests/add.rs', null, 'tests/add.rs', 1],
      ['old.txt', 'old.txt', null, 1],
    ],
  );
  assert.deepEqual(files[0].hunks[0], {
    oldStart: 1,
    oldLines: 3,
    newStart: 1,
    newLines: 4,
    lines: ['+/// The sum of `a` and `b`.', ' pub fn add(a: i32, b: i32) -> i32 {', '-    todo!()', '+    a + b', ' }'],
  });
});

test('before the result is applied, the file is the left side', () => {
  const [lib] = parseUnifiedDiff(DIFF);
  assert.deepEqual(fileSides(lib, ORIGINAL), { before: ORIGINAL, after: RESULT, complete: true });
});

test('after it is applied, the file is the right side', () => {
  const [lib] = parseUnifiedDiff(DIFF);
  assert.deepEqual(fileSides(lib, RESULT), { before: ORIGINAL, after: RESULT, complete: true });
});

test('the user’s edits elsewhere are kept on both sides', () => {
  const [lib] = parseUnifiedDiff(DIFF);
  const edited = `// a note\n// another\n${ORIGINAL}// below\n`;
  assert.deepEqual(fileSides(lib, edited), {
    before: edited,
    after: `// a note\n// another\n${RESULT}// below\n`,
    complete: true,
  });
});

test('added and deleted files come from the diff alone', () => {
  const [, added, deleted] = parseUnifiedDiff(DIFF);
  assert.deepEqual(fileSides(added, undefined), {
    before: '',
    after: '#[test]\nfn adds() { assert_eq!(pitcrew::add(1, 2), 3); }\n',
    complete: true,
  });
  assert.deepEqual(fileSides(deleted, 'gone\n'), { before: 'gone\n', after: '', complete: true });
});

test('when the file fits neither side, the hunks alone are compared', () => {
  const [lib] = parseUnifiedDiff(DIFF);
  const sides = fileSides(lib, 'something else entirely\n');
  assert.equal(sides.complete, false);
  assert.match(sides.before, /todo!\(\)/);
  assert.match(sides.after, /a \+ b/);
  assert.doesNotMatch(sides.after, /todo/);
});

test('hunks after an insertion land where the lines moved', () => {
  const diff = parseUnifiedDiff(`diff --git a/f b/f
--- a/f
+++ b/f
@@ -1,2 +1,3 @@
 a
+inserted
 b
@@ -8,3 +9,3 @@
 h
-i
+I
 j
`)[0];
  const before = 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n';
  const after = applyHunks(before, diff.hunks, 'forward');
  assert.deepEqual(after, { text: 'a\ninserted\nb\nc\nd\ne\nf\ng\nh\nI\nj\n', matched: 5 });
  assert.equal(applyHunks(after!.text, diff.hunks, 'reverse')?.text, before);
});
