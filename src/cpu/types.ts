/** A float tensor's storage on the host: float32, or float64 for gradient checks. */
export type FloatArray = Float32Array | Float64Array;
