/**
 * The environment the GPU driver expects, defaulted before an adapter is requested.
 *
 * Mesa's Vulkan drivers (llvmpipe included) check `XDG_RUNTIME_DIR` for their window-system
 * layers and print `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` when it is
 * unset, as on a server, a container or a CI runner with no desktop session. Compute never uses
 * a window system, so the line says nothing about the run. When the variable is unset (or
 * empty), the tasks point it at a private folder of their own; a value the user set is left as
 * it is, so a driver's complaint about it still shows, as does every other driver message.
 */

/** Where the default runtime folder goes: `TMPDIR` or /tmp, one folder per user. */
function defaultFolder(): string {
  const tmp = Deno.env.get("TMPDIR") || "/tmp";
  return `${tmp.replace(/\/+$/, "")}/dpo-webgpu-runtime-${Deno.uid() ?? "user"}`;
}

/** Whether `path` is a real folder (not a link) owned by this user and closed to others. */
function isPrivateFolder(path: string): boolean {
  try {
    const info = Deno.lstatSync(path);
    const uid = Deno.uid();
    return info.isDirectory && (uid === null || info.uid === uid) &&
      (info.mode === null || (info.mode & 0o077) === 0);
  } catch {
    return false;
  }
}

/**
 * Sets `XDG_RUNTIME_DIR` to a private folder (mode 0700, owned by the user) when it is unset or
 * empty, as the XDG base-directory spec asks of it. The folder is reused across runs; one that
 * someone else owns, or that others can open, is never used (a fresh temporary folder is).
 *
 * @returns the folder set, or undefined when the variable was already set (or the environment
 *   cannot be written)
 */
export function defaultRuntimeDir(): string | undefined {
  try {
    if (Deno.env.get("XDG_RUNTIME_DIR")) return undefined;
    let folder = defaultFolder();
    try {
      Deno.mkdirSync(folder, { mode: 0o700 });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    if (!isPrivateFolder(folder)) folder = Deno.makeTempDirSync({ prefix: "dpo-webgpu-runtime-" });
    Deno.env.set("XDG_RUNTIME_DIR", folder);
    return folder;
  } catch {
    // No permission to read the environment or to write a folder: the driver then prints its
    // line, which is harmless; the run goes on.
    return undefined;
  }
}
