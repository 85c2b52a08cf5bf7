import ModelPrice from '#models/model_price'

/** Sets (creates or replaces) the USD-per-1M-token prices of a model glob. */
export async function setPrice(input: { model: string; input: string; output: string }) {
  return ModelPrice.updateOrCreate(
    { modelPattern: input.model },
    { inputPerMillion: input.input, outputPerMillion: input.output }
  )
}
