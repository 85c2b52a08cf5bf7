import ModelPrice from '#models/model_price'

/** Sets (creates or replaces) the USD-per-1M-token prices (and optionally the per-image price) of a model glob. */
export async function setPrice(input: { model: string; input: string; output: string; perImage?: string | null }) {
  const values: Partial<ModelPrice> = { inputPerMillion: input.input, outputPerMillion: input.output }
  if (input.perImage !== undefined) values.perImage = input.perImage
  return ModelPrice.updateOrCreate({ modelPattern: input.model }, values)
}
