"""The shells over the libraries: the HTTP service and the `penny` command.

Public surface: `api.app.create_app(settings)` (the FastAPI app; `penny serve` runs it), `api.cli.app` (the
`penny` command), `api.keys` (`create_key`, `list_keys`, `revoke_key`, `authenticate`), `api.tables` (the
service's own tables). Everything else is internal to the service.
"""
