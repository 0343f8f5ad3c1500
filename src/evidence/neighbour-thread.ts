/**
 * The thread of neighbours by activations (activation-neighbours.ts): keeps the collections'
 * per-neuron moments and answers each query off the event loop, one at a time.
 */
import { serveRequests } from '../threads/serve.js';
import { ActivationNeighbours, type ActivationQuery } from './activation-neighbours.js';
import type { Neighbour } from './neighbours.js';

const neighbours = new ActivationNeighbours();

serveRequests<ActivationQuery, Neighbour[]>((query) => neighbours.neighbours(query));
