DROP TABLE "refresh_tokens" CASCADE;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "refresh_counter" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "refresh_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "aal" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "amr" text[];--> statement-breakpoint
-- Sessions from before kept their refresh state in refresh_tokens: they end here, and their users sign in again.
UPDATE "sessions" SET "refresh_expires_at" = now(), "aal" = 'aal1', "amr" = '{pwd}',
  "revoked_at" = coalesce("revoked_at", now()), "revoked_reason" = coalesce("revoked_reason", 'upgrade');--> statement-breakpoint
ALTER TABLE "sessions" ALTER COLUMN "refresh_expires_at" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "sessions" ALTER COLUMN "aal" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "sessions" ALTER COLUMN "amr" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_aal_check" CHECK ("sessions"."aal" in ('aal1', 'aal2', 'aal3'));
