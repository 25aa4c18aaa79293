/** `sample.representativeness`: how far from the target a table's copied fraction may be before the run warns (representativeness.ts). */
import { z } from 'zod';

export const representativenessSchema = z
  .object({
    /** A table whose copied fraction, divided by the target, falls outside [low, high] is a warning. */
    bounds: z
      .tuple([z.number().positive(), z.number().positive()])
      .refine(([low, high]) => low <= 1 && high >= 1, 'must be [low, high] with low at most 1 and high at least 1, such as [0.5, 2]')
      .default([0.5, 2]),
    /** Tables expected to receive fewer rows than this (target × production's rows) are shown but not judged: chance alone moves them. */
    'min-expected-rows': z.number().int().min(0).default(30),
    /** Foreign keys (those with the most child rows in production) whose children per parent are compared. */
    'busiest-keys': z.number().int().min(0).max(20).default(5),
  })
  .strict()
  .default({});
export type RepresentativenessSettings = z.output<typeof representativenessSchema>;
