import { reportedCount } from '#gateway/metering/token_counts'

/** What a Gemini-native embedding request says of one input besides its text (Vertex reads both per instance) */
export interface EmbeddingHints {
  taskType?: string
  title?: string
}

/** Vertex takes at most this many instances in one `:predict` (us-central1's limit; other regions take fewer and say so) */
export const VERTEX_MAX_INSTANCES = 250

/** Vertex's Gemini embedding models take one instance per request */
const ONE_INSTANCE = /^(?:publishers\/google\/models\/|models\/)?gemini-embedding-/

/**
 * Why a Vertex channel cannot embed this many inputs of `model` in one call,
 * or null when it can. Such a candidate is passed over; with none left, the
 * client gets the reason (400), never a split that bills several calls.
 */
export function vertexEmbeddingsRefusal(model: string, inputs: number): string | null {
  if (ONE_INSTANCE.test(model) && inputs > 1) return `${model} on Vertex AI embeds one input per request (${inputs} given): send them one by one`
  if (inputs > VERTEX_MAX_INSTANCES) return `Vertex AI embeds at most ${VERTEX_MAX_INSTANCES} inputs per request (${inputs} given)`
  return null
}

/**
 * The `:predict` body of Vertex's text embedding models (text-embedding-005,
 * text-multilingual-embedding-002, gemini-embedding-001): one instance per
 * input (`content`, with the Gemini request's `task_type` and `title`), and
 * `parameters.outputDimensionality` (OpenAI's `dimensions`). autoTruncate is
 * left at Vertex's default (true), as the Gemini API truncates.
 */
export function vertexEmbeddingsBody(texts: string[], hints: EmbeddingHints[] | undefined, dimensions: number | undefined): string {
  const instances = texts.map((content, i) => {
    const hint = hints?.[i]
    if (hint === undefined) return { content }
    const instance: Record<string, string> = { content }
    if (hint.taskType) instance.task_type = hint.taskType
    if (hint.title) instance.title = hint.title
    return instance
  })
  return JSON.stringify(dimensions ? { instances, parameters: { outputDimensionality: dimensions } } : { instances })
}

/**
 * A `:predict` answer's vectors, in the instances' order
 * (`predictions[].embeddings.values`); null when it is not one vector of
 * numbers for each of the `inputs` instances (a prediction short was an
 * answer of fewer vectors than inputs, billed; one without values an empty
 * vector): such an answer fails over as any that is no answer.
 */
export function vertexVectors(parsed: any, inputs: number): number[][] | null {
  const predictions = parsed?.predictions
  if (!Array.isArray(predictions) || predictions.length !== inputs) return null
  const vectors: number[][] = []
  for (const prediction of predictions) {
    const values = prediction?.embeddings?.values
    if (!Array.isArray(values) || values.length === 0) return null
    for (const value of values) if (typeof value !== 'number') return null
    vectors.push(values)
  }
  return vectors
}

/**
 * The input tokens Vertex counted: the sum of each prediction's
 * `embeddings.statistics.token_count`; null (the gateway counts) when any
 * prediction lacks one that can be believed.
 */
export function vertexTokenCount(parsed: any): number | null {
  const predictions = parsed?.predictions
  if (!Array.isArray(predictions) || predictions.length === 0) return null
  let sum = 0
  for (const prediction of predictions) {
    const count = reportedCount(prediction?.embeddings?.statistics?.token_count)
    if (count === null) return null
    sum += count
  }
  return reportedCount(sum)
}
