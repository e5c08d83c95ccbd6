import { writeFileSync } from 'node:fs'
import { generateOpenApi } from './openapi-document.js'
import { generatePostmanCollection } from './postman.js'

// `npm run openapi`: rewrites openapi/openapi.json and the Postman collection from the route schemas.
const spec = await generateOpenApi()
for (const [file, text] of [['openapi.json', spec], ['auth-api.postman_collection.json', await generatePostmanCollection(JSON.parse(spec))]] as const) {
  const target = new URL(`../openapi/${file}`, import.meta.url)
  writeFileSync(target, text)
  console.log(`wrote ${target.pathname}`)
}
