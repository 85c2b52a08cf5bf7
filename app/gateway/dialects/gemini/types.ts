import type { GeminiGrounding } from '#gateway/dialects/gemini/grounding'
/** Gemini generateContent wire types (the parts the gateway reads or writes). */

export interface GeminiPart {
  text?: string
  thought?: boolean
  thoughtSignature?: string
  inlineData?: { mimeType: string; data: string }
  fileData?: { mimeType?: string; fileUri: string }
  functionCall?: { id?: string; name: string; args?: Record<string, unknown> }
  functionResponse?: { id?: string; name: string; response?: Record<string, unknown> }
}

export interface GeminiContent {
  role?: 'user' | 'model' | 'function' | string
  parts: GeminiPart[]
}

export interface GeminiFunctionDeclaration {
  name: string
  description?: string
  parameters?: Record<string, unknown>
  parametersJsonSchema?: Record<string, unknown>
}

export interface GeminiRequest {
  contents: GeminiContent[]
  systemInstruction?: GeminiContent | string
  tools?: Array<{ functionDeclarations?: GeminiFunctionDeclaration[]; [key: string]: unknown }>
  toolConfig?: { functionCallingConfig?: { mode?: string; allowedFunctionNames?: string[] } }
  generationConfig?: {
    maxOutputTokens?: number
    temperature?: number
    topP?: number
    topK?: number
    stopSequences?: string[]
    responseMimeType?: string
    responseSchema?: Record<string, unknown>
    responseJsonSchema?: Record<string, unknown>
    thinkingConfig?: { thinkingBudget?: number; includeThoughts?: boolean; thinkingLevel?: string }
    /** TEXT, IMAGE, AUDIO: what the answer may hold (image models: ["TEXT", "IMAGE"]) */
    responseModalities?: string[]
    /** The generated image's shape: `aspectRatio` ("16:9"), `imageSize` ("1K", "2K", "4K") */
    imageConfig?: { aspectRatio?: string; imageSize?: string }
  }
  /** countTokens may wrap the whole request */
  generateContentRequest?: GeminiRequest
}

export interface GeminiUsage {
  promptTokenCount?: number
  candidatesTokenCount?: number
  totalTokenCount?: number
  cachedContentTokenCount?: number
  thoughtsTokenCount?: number
  toolUsePromptTokenCount?: number
  /** Per modality (TEXT, IMAGE, AUDIO, VIDEO, DOCUMENT): the prompt's, its cached part's and the answer's */
  promptTokensDetails?: GeminiModalityCount[]
  cacheTokensDetails?: GeminiModalityCount[]
  candidatesTokensDetails?: GeminiModalityCount[]
}

export interface GeminiModalityCount {
  modality?: string
  tokenCount?: number
}

export interface GeminiResponse {
  candidates?: Array<{ content?: GeminiContent; finishReason?: string; index?: number; groundingMetadata?: GeminiGrounding }>
  usageMetadata?: GeminiUsage
  modelVersion?: string
  responseId?: string
  promptFeedback?: { blockReason?: string }
}
