import { writeFileSync } from 'node:fs'
import { generateOpenApi } from './openapi-document.js'

// `npm run openapi`: rewrites openapi/openapi.json from the route schemas.
const target = new URL('../openapi/openapi.json', import.meta.url)
writeFileSync(target, await generateOpenApi())
console.log(`wrote ${target.pathname}`)
