# syntax=docker/dockerfile:1
# Build: dev dependencies, compile TypeScript to dist/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Run: production dependencies and the compiled output only, as the non-root node user.
FROM node:20-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY drizzle ./drizzle
COPY public ./public
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node itself, not npm start: npm would not pass SIGTERM on for a graceful shutdown.
# The preload sizes libuv's thread pool to the cores before the ES module loader starts it.
# Migrations are applied on start (an advisory lock keeps several starting copies in order).
CMD ["node", "--require", "./dist/threadpool.cjs", "dist/server.js"]
