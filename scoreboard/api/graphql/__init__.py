"""`/graphql`: the board reads as GraphQL queries and a ranking as a subscription."""
