async def test_typename(gql):
    body = await gql("{ __typename }")
    assert body["data"] == {"__typename": "Query"}


async def test_register(make_user, gql):
    account = await make_user()
    body = await gql("{ me { id email role } }", token=account.token)
    assert body["data"]["me"]["email"] == account.email
