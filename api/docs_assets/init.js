// The API page: Swagger UI (served from the swagger-ui-bundle package, never a CDN) over /api/openapi.json.
window.addEventListener("load", () => {
  window.ui = window.SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui" });
});
