import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.tap/**', 'data/**', 'drizzle/meta/**'] }),
  {
    rules: {
      // the project writes trailing commas in multi-line literals
      '@stylistic/comma-dangle': ['error', 'always-multiline'],
    },
  },
  {
    // a TypeBox schema and its Static<> type share a name (TypeBox's own convention)
    files: ['src/schemas/**/*.ts'],
    rules: { '@typescript-eslint/no-redeclare': 'off' },
  },
]
