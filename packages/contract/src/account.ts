// Accounts: what sign-up and log-in accept.
import { z } from 'zod';

export const emailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .max(254, 'Email must be at most 254 characters')
  .pipe(z.email('Enter a valid email address'));

export const passwordSchema = z
  .string()
  .min(10, 'Password must be at least 10 characters')
  .max(256, 'Password must be at most 256 characters');

export const userNameSchema = z.string().trim().max(100, 'Name must be at most 100 characters');

export const signUpInputSchema = z.object({
  email: emailSchema,
  password: passwordSchema,
  name: userNameSchema.default(''),
});
export type SignUpInput = z.input<typeof signUpInputSchema>;
