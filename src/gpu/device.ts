/**
 * Adapter and device: asks for the adapter's own maximum limits, and says how to get an adapter
 * when there is none.
 *
 * @module
 */

/** Raised when no WebGPU adapter exists; the message names the fix. */
export class NoAdapterError extends Error {
  /** An error saying what was missing (`detail`) and how to get an adapter. */
  constructor(detail: string) {
    super(
      `no WebGPU adapter found (${detail}). On Linux without a GPU, install the software Vulkan ` +
        `driver: \`sudo apt-get install -y mesa-vulkan-drivers\`; in Deno run with ` +
        `--unstable-webgpu; or pass --device cpu to use the CPU reference backend.`,
    );
    this.name = "NoAdapterError";
  }
}

/** A device with the adapter's limits and a readable adapter name. */
export interface GpuDevice {
  /** The WebGPU device. */
  device: GPUDevice;
  /** The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  adapterName: string;
  /** True for software adapters (llvmpipe, SwiftShader). */
  isFallback: boolean;
  /** The limits the device was created with (the adapter's maximums). */
  limits: GPUSupportedLimits;
  /**
   * The adapter's identity for tuning caches: vendor, architecture, device and driver
   * description. @default adapterName
   */
  adapterKey?: string;
  /** The device was created with `shader-f16` (the adapter offers it): f16 weights widen natively. */
  shaderF16?: boolean;
  /** The device was created with `subgroups` (the adapter offers it): the subgroup matmul runs. */
  subgroups?: boolean;
}

/** The limits we raise to the adapter's maximum. */
const RAISED_LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
] as const;

/** Describes an adapter in one line, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
export function describeAdapter(adapter: GPUAdapter): string {
  const info = adapter.info;
  return info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(
    " ",
  ) || "unknown adapter";
}

/**
 * Requests an adapter and a device with the adapter's maximum limits.
 *
 * @throws {NoAdapterError} when `navigator.gpu` is missing or returns no adapter.
 */
export async function requestDevice(
  options: { powerPreference?: GPUPowerPreference } = {},
): Promise<GpuDevice> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new NoAdapterError("navigator.gpu is undefined");
  const adapter = await gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) throw new NoAdapterError("navigator.gpu.requestAdapter() returned null");
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const value = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof value === "number") requiredLimits[name] = value;
  }
  // shader-f16 where offered: frozen f16 weights are then widened with WGSL's f16 type.
  const shaderF16 = adapter.features.has("shader-f16");
  // subgroups where offered: the matmul tuner then times the subgroup candidates too.
  const subgroups = adapter.features.has("subgroups" as GPUFeatureName);
  const requiredFeatures = [
    ...(shaderF16 ? ["shader-f16"] : []),
    ...(subgroups ? ["subgroups"] : []),
  ] as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  return {
    device,
    adapterName: describeAdapter(adapter),
    isFallback: adapter.info.isFallbackAdapter ?? false,
    adapterKey: [
      adapter.info.vendor,
      adapter.info.architecture,
      adapter.info.device,
      adapter.info.description,
    ].join("|"),
    limits: device.limits,
    shaderF16,
    subgroups,
  };
}

let probed: Promise<boolean> | undefined;

/** Whether a WebGPU adapter is available here (cached). Never throws. */
export function hasWebGpu(): Promise<boolean> {
  probed ??= (async () => {
    try {
      const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
      return Boolean(gpu && await gpu.requestAdapter());
    } catch {
      return false;
    }
  })();
  return probed;
}
