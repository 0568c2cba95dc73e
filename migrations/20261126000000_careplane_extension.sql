-- The careplane extension: business rules in Rust, in schema careplane.
-- Install the extension files first (`cargo pgrx install`, or the packaged files).
create extension if not exists careplane;

-- Rule functions are pure; RPCs are security invoker, so the API roles need to reach them.
-- PostgREST does not expose the careplane schema itself.
grant usage on schema careplane to anon, authenticated, service_role;
