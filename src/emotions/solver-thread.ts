/**
 * The worker thread of a CompositionSolver (composition-solver.ts): sparse fits and atlases, off
 * the service's event loop.
 */
import { serveRequests } from '../threads/serve.js';
import { solve, type SolvedComposition, type SolverRequest } from './composition-solver.js';
import type { Atlas } from './types.js';

serveRequests<SolverRequest, SolvedComposition | Atlas>(solve, (answer) =>
  // A set: the classes of one multinomial fit may share a buffer.
  'classes' in answer ? [...new Set(answer.classes.map(({ coef }) => coef.buffer as ArrayBuffer))] : [],
);
