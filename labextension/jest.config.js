// Jest runs the pure picker and refresh logic under Node (no JupyterLab, no DOM).
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: { module: 'commonjs', types: ['jest'], isolatedModules: true } }]
  }
};
