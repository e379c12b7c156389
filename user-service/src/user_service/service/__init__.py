"""user-service's business rules, by topic: plain async functions taking the session.

- `registration`: a new organisation and its first user; creating a user;
- `authentication`: password login with the lockout counter (`user_service.lockout`);
- `tokens`: issuing, rotating (refresh) and revoking (logout) tokens;
- `profile`: the current user, their name and password;
- `organizations`: seeing and listing organisations, a platform admin's verification;
- `suspension`: suspending and reinstating hospitals and vendors, the Redis marks;
- `members`: listing members, invitations by e-mailed token, removing members;
- `licences`: the licence job (expiry warnings, suspension of expired licences);
- `platform_admin`: the platform organisation and its first admin (start-up, CLI);
- `clock`: the current moment, as every rule above reads it.

Ending sessions everywhere is `user_service.sessions`. None of these commits: they
flush, and the caller (request, job or CLI) owns the transaction. Login and refresh
return a `tokens.Refused` when the answer is an error but the write (a revoked family,
an upgraded hash) must still be committed.
"""
