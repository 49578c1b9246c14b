// OAuth apps as partners register them: what the create form, the CLI and the API accept.
import { z } from 'zod';
import { appScopeSchema } from './scopes.ts';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname);
}

/** https anywhere; http only on loopback (RFC 8252); never fragments (RFC 6749 §3.1.2). */
export const redirectUriSchema = z
  .string()
  .trim()
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${value} is not an absolute URL` });
      return;
    }
    if (url.hash || value.includes('#')) {
      ctx.addIssue({ code: 'custom', message: `${value} must not have a fragment` });
    } else if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      ctx.addIssue({
        code: 'custom',
        message: `${value} must use https (http is only for 127.0.0.1, [::1] or localhost)`,
      });
    } else if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      ctx.addIssue({ code: 'custom', message: `${value} must be an https URL` });
    } else if (url.username || url.password) {
      ctx.addIssue({ code: 'custom', message: `${value} must not carry credentials` });
    }
  });

const optionalHttpsUrl = (label: string) =>
  z
    .string()
    .trim()
    .max(2000)
    .refine((v) => v === '' || /^https:\/\/[^\s]+$/.test(v), `${label} must be an https URL`)
    .transform((v) => v || null)
    .nullable()
    .optional();

/** A page people open (the app's homepage): https, or http on loopback while an app is developed. */
const optionalWebUrl = (label: string) =>
  z
    .string()
    .trim()
    .max(2000)
    .refine((v) => {
      if (v === '') return true;
      if (/\s/.test(v)) return false;
      try {
        const url = new URL(v);
        return (
          url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))
        );
      } catch {
        return false;
      }
    }, `${label} must be an https URL (http only for localhost, 127.0.0.1 or [::1])`)
    .transform((v) => v || null)
    .nullable()
    .optional();

export const oauthAppCreateSchema = z.object({
  name: z.string().trim().min(1, 'Name is required').max(80, 'Name must be at most 80 characters'),
  description: z.string().trim().max(500, 'Description must be at most 500 characters').default(''),
  logoUrl: optionalHttpsUrl('Logo URL'),
  homepageUrl: optionalWebUrl('Homepage URL'),
  redirectUris: z.array(redirectUriSchema).min(1, 'At least one redirect URI is required').max(20),
  scopes: z.array(appScopeSchema, { error: 'Unknown scope' }).min(1, 'Choose at least one scope'),
  clientType: z.enum(['confidential', 'public']).default('confidential'),
});
export type OAuthAppCreateInput = z.input<typeof oauthAppCreateSchema>;
