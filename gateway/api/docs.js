// The documentation page's Swagger UI (/api/v1/docs): the OpenAPI document of this gateway, read from
// the URL in #swagger-ui's data-openapi-url. Served by the gateway (no inline script: CSP script-src 'self').
"use strict";
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  if (!node || typeof SwaggerUIBundle !== "function") {
    return;
  }
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-openapi-url"),
    domNode: node,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",        // no top bar: this page shows this gateway's document only
    deepLinking: true,           // #/<tag>/<operation> links
    validatorUrl: null,          // no badge fetched from another host
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    persistAuthorization: false, // the API key stays in this page's memory only
    tryItOutEnabled: false
  });
});
