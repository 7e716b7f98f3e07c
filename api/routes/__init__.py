"""The API's routers, one per area; api.app assembles them."""
