// The OpenAPI docs, served offline from the swagger-ui-bundle package (no CDN, no inline script).
window.SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });
