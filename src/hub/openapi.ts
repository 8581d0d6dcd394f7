/** The OpenAPI 3.1 document, generated from the route table and its zod schemas. */
import { z } from 'zod';
import { ERRORS } from '../errors.js';
import { ROUTES } from './api.js';

export function buildOpenApi(version: string, publicUrl: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) {
    const openPath = route.path.replace(/:([a-zA-Z]+)/g, '{$1}');
    const parameters = [...route.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const operation: Record<string, unknown> = {
      summary: route.summary,
      operationId: `${route.method.toLowerCase()}${openPath.replace(/[{}]/g, '').replace(/\/(\w)/g, (_, c: string) => c.toUpperCase()).replace(/\W/g, '')}`,
      ...(parameters.length ? { parameters } : {}),
      ...(route.roles ? { security: [{ bearer: [] }], 'x-roles': route.roles } : { security: [] }),
      responses: {
        '2XX': { description: 'Success (JSON)' },
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
    if (route.body) {
      operation['requestBody'] = {
        required: true,
        content: { 'application/json': { schema: z.toJSONSchema(route.body, { io: 'input', unrepresentable: 'any' }) } },
      };
    }
    paths[openPath] = { ...(paths[openPath] ?? {}), [route.method.toLowerCase()]: operation };
  }
  paths['/v1/streams/{id}/{side}'] = {
    get: {
      summary: 'Rendezvous WebSocket (side = client | agent); Authorization: Bearer <one-time token>',
      responses: { '101': { description: 'Switching protocols' } },
    },
  };
  paths['/v1/agent/connect'] = {
    get: { summary: 'Agent control WebSocket (challenge-response with the device key)', responses: { '101': { description: 'Switching protocols' } } },
  };
  return {
    openapi: '3.1.0',
    info: { title: 'Drawbridge hub API', version },
    servers: [{ url: publicUrl }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string', enum: Object.keys(ERRORS) }, message: { type: 'string' }, details: {} },
            },
          },
        },
      },
    },
  };
}
