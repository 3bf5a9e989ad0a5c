-- One PostgreSQL role per service, each owning its own database and let into no other, so a
-- service that is broken into gives away its own data and nothing more. Run it as a superuser
-- (or a role with CREATEROLE and CREATEDB) before the services' first start; it is safe to run
-- again, after adding a service say:
--
--   psql -v ON_ERROR_STOP=1 -v prefix=tessera -f deploy/postgres/roles.sql
--
-- prefix is TESSERA_DATABASE_PREFIX: databases and roles are both named <prefix>_<service>.
-- The roles get no password here: set each with `\password <prefix>_<service>` in psql and put
-- it in that service's Secret. Only for a development server, -v development_password=... gives
-- every role that password (the development overlay's Secrets use `development`).
\set ON_ERROR_STOP on
SET client_min_messages TO warning;
\if :{?prefix}
\else
  \set prefix tessera
\endif

-- The services and the gateway. The vault's keys live in <prefix>_vault, shared by the
-- services that seal personal data (orders, customers, support; cli/src/registry.rs) and the
-- gateway, which seals its token signing keys.
CREATE TEMPORARY TABLE tessera_services (service text PRIMARY KEY, seals boolean NOT NULL);
INSERT INTO tessera_services VALUES
  ('inventory', false), ('orders', true), ('payments', false),
  ('customers', true), ('support', true), ('gateway', true);

SELECT format('CREATE ROLE %I LOGIN', :'prefix' || '_' || service)
FROM tessera_services
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'prefix' || '_' || service)
\gexec

-- The vault's owner logs in as no one: the services that use it become it inside that
-- database only, so whichever of them runs a migration first, the tables belong to the vault
-- and the others can use them.
SELECT format('CREATE ROLE %I NOLOGIN', :'prefix' || '_vault')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'prefix' || '_vault')
\gexec

-- Created here rather than by `tessera serve` (which creates its database only when missing),
-- so the services' roles need no CREATEDB.
SELECT format('CREATE DATABASE %I OWNER %I', name, name)
FROM (SELECT :'prefix' || '_' || service AS name FROM tessera_services
      UNION ALL SELECT :'prefix' || '_vault') AS wanted
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = name)
\gexec

-- No one but the owner connects: PUBLIC would otherwise let every role into every database.
SELECT format('ALTER DATABASE %I OWNER TO %I', name, name), format('REVOKE ALL ON DATABASE %I FROM PUBLIC', name)
FROM (SELECT :'prefix' || '_' || service AS name FROM tessera_services
      UNION ALL SELECT :'prefix' || '_vault') AS wanted
\gexec

SELECT format('GRANT %I TO %I', :'prefix' || '_vault', :'prefix' || '_' || service),
       format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'prefix' || '_vault', :'prefix' || '_' || service),
       format('ALTER ROLE %I IN DATABASE %I SET role = %L',
              :'prefix' || '_' || service, :'prefix' || '_vault', :'prefix' || '_vault')
FROM tessera_services WHERE seals
\gexec

\if :{?development_password}
SELECT format('ALTER ROLE %I PASSWORD %L', :'prefix' || '_' || service, :'development_password')
FROM tessera_services
\gexec
\endif

DROP TABLE tessera_services;
