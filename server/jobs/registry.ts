// The one registry of job types. Definitions (type, resource, input schema, timeout, attempts) are known to the web
// server, which validates submissions; handlers are attached only in worker processes (server/worker/handlers.ts),
// so the web server never loads the trainer.
import { z } from 'zod';
import { JobInputError, type JobDefinition, type JobHandler, type SubmitRequest } from './contract.ts';

const TYPE_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

export class JobRegistry {
  private readonly definitions = new Map<string, JobDefinition>();
  private readonly handlers = new Map<string, JobHandler>();

  define<I>(definition: JobDefinition<I>): JobDefinition<I> {
    if (!TYPE_PATTERN.test(definition.type)) throw new Error(`job type '${definition.type}' must match ${TYPE_PATTERN}`);
    if (this.definitions.has(definition.type)) throw new Error(`job type '${definition.type}' is defined twice`);
    if (!(definition.maxAttempts >= 1) || !(definition.timeoutMs > 0) || definition.maxTimeoutMs < definition.timeoutMs) {
      throw new Error(`job type '${definition.type}' needs maxAttempts >= 1 and 0 < timeoutMs <= maxTimeoutMs`);
    }
    this.definitions.set(definition.type, definition);
    return definition;
  }

  handle<I>(definition: JobDefinition<I>, handler: JobHandler<I>): void {
    if (this.definitions.get(definition.type) !== definition) throw new Error(`job type '${definition.type}' is not defined in this registry`);
    if (this.handlers.has(definition.type)) throw new Error(`job type '${definition.type}' has two handlers`);
    this.handlers.set(definition.type, handler);
  }

  definition(type: string): JobDefinition | undefined {
    return this.definitions.get(type);
  }

  handler(type: string): JobHandler | undefined {
    return this.handlers.get(type);
  }

  types(): string[] {
    return [...this.definitions.keys()].sort();
  }

  handledTypes(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** Checks a submission against its type's definition; the error message says exactly what is wrong. */
  validateSubmission(request: SubmitRequest): { definition: JobDefinition; input: unknown; timeoutMs: number } {
    const definition = this.definitions.get(request.type);
    if (!definition) {
      throw new JobInputError(`unknown job type '${request.type}' (known: ${this.types().join(', ') || 'none'})`);
    }
    const timeoutMs = request.timeoutMs ?? definition.timeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > definition.maxTimeoutMs) {
      throw new JobInputError(`timeoutMs for '${definition.type}' must be an integer from 1 to ${definition.maxTimeoutMs}`);
    }
    return { definition, input: parseJobInput(definition, request.input), timeoutMs };
  }
}

export function parseJobInput<I>(definition: JobDefinition<I>, input: unknown): I {
  const parsed = definition.input.safeParse(input);
  if (!parsed.success) {
    throw new JobInputError(`invalid input for a '${definition.type}' job: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}
