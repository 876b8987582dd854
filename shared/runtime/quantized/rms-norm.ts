/** RMSNorm of one row, as the compiler's Pow/ReduceMean/Add/Sqrt/Div/Mul (shared/model/graphs/linear.ts). */
export function rmsNorm(x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
  let squares = 0;
  for (let i = 0; i < x.length; i++) squares += x[i] * x[i];
  const inv = 1 / Math.sqrt(squares / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * inv * weight[i];
}
