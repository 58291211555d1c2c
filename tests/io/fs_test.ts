import assert from "node:assert/strict";
import { basename, dirname, FileNotFoundError, type FileStore, joinPath } from "../../src/io/fs.ts";
import { MemoryFileStore } from "../../src/io/memory_fs.ts";
import { DenoFileStore } from "../../src/io/deno_fs.ts";

Deno.test("joinPath, dirname and basename handle separators without node:path", () => {
  assert.equal(joinPath("runs/sft/", "/model.safetensors"), "runs/sft/model.safetensors");
  assert.equal(joinPath("/tmp", "./a", "", "b"), "/tmp/a/b");
  assert.equal(joinPath("."), ".");
  assert.equal(dirname("a/b/c.json"), "a/b");
  assert.equal(dirname("c.json"), ".");
  assert.equal(dirname("/c.json"), "/");
  assert.equal(basename("a/b/c.json"), "c.json");
});

/** The behaviour every FileStore shares, run against both implementations. */
async function exerciseStore(fs: FileStore, root: string): Promise<void> {
  const bytes = new Uint8Array([1, 2, 3]);
  await assert.rejects(fs.readFile(joinPath(root, "missing.bin")), FileNotFoundError);
  await assert.rejects(fs.readText(joinPath(root, "missing.txt")), FileNotFoundError);
  // Writing into a folder that does not exist fails; mkdirp creates parents and is idempotent.
  await assert.rejects(fs.writeFileAtomic(joinPath(root, "a/b/x.bin"), bytes));
  await fs.mkdirp(joinPath(root, "a/b"));
  await fs.mkdirp(joinPath(root, "a/b"));
  assert.equal(await fs.exists(joinPath(root, "a")), true);
  await fs.writeFileAtomic(joinPath(root, "a/b/x.bin"), bytes);
  bytes[0] = 9; // the store must have kept its own copy (or the bytes on disk)
  assert.deepStrictEqual(await fs.readFile(joinPath(root, "a/b/x.bin")), new Uint8Array([1, 2, 3]));
  await fs.writeFileAtomic(joinPath(root, "a/b/x.bin"), new TextEncoder().encode("héllo"));
  assert.equal(await fs.readText(joinPath(root, "a/b/x.bin")), "héllo");
  await fs.writeFileAtomic(joinPath(root, "a/y.txt"), new Uint8Array());
  // list gives sorted names, files and folders alike, and no temporary file is left behind.
  assert.deepStrictEqual(await fs.list(joinPath(root, "a")), ["b", "y.txt"]);
  assert.deepStrictEqual(await fs.list(joinPath(root, "a/b")), ["x.bin"]);
  assert.equal(await fs.exists(joinPath(root, "a/z")), false);
  await assert.rejects(fs.list(joinPath(root, "nope")), FileNotFoundError);
}

Deno.test("MemoryFileStore behaves like a file system: missing files, folders, atomic overwrite", async () => {
  const fs = new MemoryFileStore({ "seed/config.json": "{}" });
  assert.equal(await fs.readText("seed//./config.json"), "{}");
  await exerciseStore(fs, "root");
  assert.deepStrictEqual(fs.paths(), ["root/a/b/x.bin", "root/a/y.txt", "seed/config.json"]);
});

Deno.test("DenoFileStore behaves the same and its atomic writes leave no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fs_test_" });
  try {
    await exerciseStore(new DenoFileStore(), dir);
    assert.deepStrictEqual([...Deno.readDirSync(`${dir}/a/b`)].map((e) => e.name), ["x.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed atomic write keeps the old file and removes its temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fs_test_" });
  try {
    const fs = new DenoFileStore();
    // Renaming a file over a non-empty folder fails after the temporary file was written.
    await fs.mkdirp(`${dir}/target/inner`);
    await assert.rejects(fs.writeFileAtomic(`${dir}/target`, new Uint8Array([1])), /target/);
    assert.deepStrictEqual(await fs.list(dir), ["target"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("src/io uses Deno.* only in deno_fs.ts and node:* nowhere", async () => {
  const folder = new URL("../../src/io/", import.meta.url);
  for await (const entry of Deno.readDir(folder)) {
    const text = await Deno.readTextFile(new URL(entry.name, folder));
    const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ""); // comments may mention them
    if (entry.name !== "deno_fs.ts") assert.doesNotMatch(code, /\bDeno\./, entry.name);
    assert.doesNotMatch(code, /["']node:/, entry.name);
  }
});
