"""Getting notifications out of Flow: e-mail, signed webhooks, and the worker sending both."""
