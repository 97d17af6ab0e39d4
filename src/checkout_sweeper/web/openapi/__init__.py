"""The OpenAPI document of the service, its schemas, and the page (Swagger UI) that shows it."""
